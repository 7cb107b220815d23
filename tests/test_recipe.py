"""Recipes: safe YAML, version, base inheritance, unknown keys with suggestions, ranges and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.recipe import Recipe, RecipeError, load_recipe, recipe_from_dict, recipe_to_dict

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.version == 1 and recipe.name


def test_base_inheritance_merges_sections(tmp_path):
    (tmp_path / "base.yaml").write_text("version: 1\nmodel: {backbone: vgg16, width_mult: 0.5}\n"
                                        "train: {epochs: 5, lr: 0.1}\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\ntrain: {epochs: 9}\n")
    recipe = load_recipe(tmp_path / "run.yaml")
    assert (recipe.model.backbone, recipe.model.width_mult) == ("vgg16", 0.5)
    assert (recipe.train.epochs, recipe.train.lr) == (9, 0.1)


@pytest.mark.parametrize("text,message", [
    ("version: 1\nmodle: {}\n", "did you mean 'model'"),
    ("version: 1\ntrain: {ephocs: 3}\n", "did you mean 'epochs'"),
    ("version: 1\nmodel: {backbone: vgg61}\n", "did you mean 'vgg16'"),
    ("version: 1\ntrain: {lr: -1}\n", "outside"),
    ("version: 1\ntrain: {epochs: ten}\n", "is not a int"),
    ("version: 2\n", "version 2 is not supported"),
    ("version: 1\nbase: missing.yaml\n", "cannot read"),
    ("- a list\n", "mapping"),
    ("version: 1\nmodel: !!python/object/apply:os.system ['echo hi']\n", "cannot read"),
])
def test_bad_recipes_name_file_key_and_fix(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert "bad.yaml" in str(info.value) or "missing.yaml" in str(info.value)


def test_round_trip_through_plain_data():
    assert recipe_from_dict(recipe_to_dict(Recipe())) == Recipe()
