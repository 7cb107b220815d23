"""Recipes: safe YAML, version, base inheritance, unknown keys with suggestions, ranges and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.recipe import Recipe, RecipeError, load_recipe, recipe_from_dict, recipe_to_dict, with_overrides

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


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_recipe_says_where_its_data_comes_from_and_how_it_balances(path):
    recipe = load_recipe(path)
    text = path.read_text()
    assert recipe.sources and all(s.path for s in recipe.sources)
    assert "#   data:" in text and "#   balance:" in text
    assert abs(sum(recipe.balance.fractions) - 1) < 1e-9


def test_sources_accept_a_bare_path_or_a_mapping(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nsources:\n  - logos/\n  - {path: raccoon, format: voc, source: r, "
                    "images: [imgs], on_error: fail}\n")
    first, second = load_recipe(path).sources
    assert (first.path, first.format, first.source) == ("logos/", "auto", "")
    assert (second.format, second.source, second.images, second.on_error) == ("voc", "r", ("imgs",), "fail")


def test_sources_and_balance_inherit_from_a_base(tmp_path):
    (tmp_path / "base.yaml").write_text("version: 1\nsources: [a]\nbalance: {select: 0.5, seed: 3}\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\nbalance: {seed: 7}\n")
    recipe = load_recipe(tmp_path / "run.yaml")
    assert recipe.sources[0].path == "a" and (recipe.balance.select, recipe.balance.seed) == (0.5, 7)


@pytest.mark.parametrize("text,message", [
    ("version: 1\nsources: [{pth: a}]\n", r"sources\[0\]: unknown key 'pth'; did you mean 'path'"),
    ("version: 1\nsources: [{format: voc}]\n", r"sources\[0\]: a source needs `path`; fix"),
    ("version: 1\nsources: [{path: a, on_error: skipp}]\n", "did you mean 'skip'"),
    ("version: 1\nbalance: {fractons: [0.8, 0.2, 0]}\n", "did you mean 'fractions'"),
    ("version: 1\nbalance: {fractions: [0.8, 0.3, 0.1]}\n", "summing to 1; fix"),
    ("version: 1\nbalance: {target: tempred}\n", "did you mean 'tempered'"),
    ("version: 1\nbalance: {target: weights}\n", "needs class_weights; fix"),
    ("version: 1\nbalance: {target: weights, class_weights: {cat: -1}}\n", "non-negative"),
    ("version: 1\nbalance: {negatives_per_positive: -0.5}\n", "outside"),
    ("version: 1\nanchors: {fitt: true}\n", "did you mean 'fit'"),
    ("version: 1\nevaluate: {iou: 1.5}\n", "outside"),
])
def test_bad_sources_balance_and_evaluate_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert "bad.yaml" in str(info.value)


def test_every_key_is_documented_by_its_comment():
    import dataclasses
    import inspect

    import curate.recipe as module

    sections = [c for c in vars(module).values() if dataclasses.is_dataclass(c) and c.__module__ == module.__name__]
    undocumented = []
    for section in sections:
        lines = inspect.getsource(section).splitlines()
        assert section is module.Recipe or section.__doc__, section  # a section says what it configures
        for f in dataclasses.fields(section):
            if dataclasses.is_dataclass(section.__dataclass_fields__[f.name].default):
                continue  # a section: documented by its class
            line = next(line for line in lines if line.strip().startswith(f"{f.name}:"))
            if "#" not in line:
                undocumented.append(f"{section.__name__}.{f.name}")
    assert not undocumented


def test_overrides_are_checked_like_a_file():
    recipe = with_overrides(Recipe(), {"train.lr": 0.02, "balance.seed": 4})
    assert (recipe.train.lr, recipe.balance.seed) == (0.02, 4)
    with pytest.raises(RecipeError, match="did you mean 'lr'"):
        with_overrides(Recipe(), {"train.lrr": 0.02})
    with pytest.raises(RecipeError, match="is a value, not a section"):
        with_overrides(Recipe(), {"train.lr.x": 1})
