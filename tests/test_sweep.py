"""`curate sweep`: --set parsing, variants checked like recipes, and a real 2-variant sweep (tiny training)
whose re-run skips both variants."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from factories import keep_database_up

from curate.errors import CurateError
from curate.recipe import RecipeError, load_recipe
from curate.sweep import make_variants, parse_set, run_sweep
from curate.synth import write_labelimg_folder


def write_recipe(tmp: Path, dataset: str, data: Path, *, fit: bool = False) -> Path:
    recipe = {"version": 1, "name": "sweep", "dataset": dataset,
              "sources": [{"path": str(data), "format": "labelimg"}],
              "balance": {"fractions": [0.7, 0.3, 0.0]}, "anchors": {"fit": fit},
              "model": {"backbone": "tiny", "image_size": [64, 64]}, "augment": {"preset": "none"},
              "train": {"epochs": 3, "batch_size": 8, "workers": 0, "lr": 0.05, "warmup_epochs": 0,
                        "val_every": 1},
              "evaluate": {"split": "val"}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_parse_set_reads_yaml_values_and_keeps_bracketed_commas():
    assert parse_set("train.lr=0.02,0.04") == ("train.lr", [0.02, 0.04])
    assert parse_set("model.image_size=[64, 64],[96,96]") == ("model.image_size", [[64, 64], [96, 96]])
    assert parse_set("train.amp=true,false,true") == ("train.amp", [True, False])
    with pytest.raises(CurateError, match="KEY=VALUE"):
        parse_set("train.lr")


def test_variants_are_the_cartesian_product_checked_like_recipes(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "d", tmp_path))
    variants = make_variants(recipe, [parse_set("train.lr=0.02,0.04"), parse_set("loss.neg_pos_ratio=3,5")],
                             epochs=2)
    assert [v.name for v in variants] == ["lr-0.02_neg_pos_ratio-3", "lr-0.02_neg_pos_ratio-5",
                                          "lr-0.04_neg_pos_ratio-3", "lr-0.04_neg_pos_ratio-5"]
    assert (variants[3].recipe.train.lr, variants[3].recipe.loss.neg_pos_ratio) == (0.04, 5.0)
    assert {v.recipe.train.epochs for v in variants} == {2}
    with pytest.raises(RecipeError, match="did you mean 'neg_pos_ratio'"):
        make_variants(recipe, [parse_set("loss.neg_pos_ration=3,5")])
    with pytest.raises(RecipeError, match="outside"):
        make_variants(recipe, [parse_set("train.lr=0.02,-1")])


def test_variant_names_are_unique_short_and_stable(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "d", tmp_path))
    sets = [parse_set("data.val_split=a/b,ab,Val,val," + "x" * 300)]
    names = [v.name for v in make_variants(recipe, sets)]
    assert len({n.lower() for n in names}) == 5, names  # one folder each, on any file system
    assert names[1] == "val_split-ab" and names[0].startswith("val_split-ab-")  # a/b lost a character
    assert names[2].startswith("val_split-Val-") and names[3].startswith("val_split-val-")  # case only
    assert max(len(n) for n in names) <= 110 and len(names[4]) > 100
    assert [v.name for v in make_variants(recipe, sets)] == names
    assert make_variants(recipe, [parse_set("data.val_split=a/b")])[0].name == names[0]


def test_epochs_and_a_swept_train_epochs_are_refused_together(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "d", tmp_path))
    with pytest.raises(CurateError, match="--epochs 2 and --set train.epochs=... both set train.epochs; fix"):
        make_variants(recipe, [parse_set("train.epochs=3,5")], epochs=2)
    assert [v.recipe.train.epochs for v in make_variants(recipe, [parse_set("train.epochs=3,5")])] == [3, 5]


def test_keys_of_the_shared_data_stages_cannot_vary(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "d", tmp_path, fit=True))
    with pytest.raises(CurateError, match="share one dataset.*fix"):
        make_variants(recipe, [parse_set("clean.top_k=2,3")])
    with pytest.raises(CurateError, match="anchors are fitted once.*anchors.fit: false"):
        make_variants(recipe, [parse_set("model.image_size=[64,64],[96,96]")])


@pytest.mark.slow
def test_two_variant_sweep_writes_the_comparison_and_a_rerun_skips_both(tmp_path, dataset_name, curate_cmd,
                                                                        curate_env):
    keep_database_up()
    data = write_labelimg_folder(tmp_path / "labels", 40, width=160, height=120, max_boxes=3)
    recipe_path = write_recipe(tmp_path, dataset_name, data)
    out = tmp_path / "sweep"
    command = curate_cmd + ["sweep", str(recipe_path), "--set", "train.lr=0.02,0.05", "--epochs", "2",
                            "--out", str(out), "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, env=curate_env, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [(r["variant"], r["train.lr"], r["epochs"]) for r in rows] == [("lr-0.02", "0.02", "2"),
                                                                       ("lr-0.05", "0.05", "2")]
    assert all(float(r["voc_map50"]) >= 0 and float(r["train_images_per_second"]) > 0 for r in rows)
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["best"] in ("lr-0.02", "lr-0.05") and len(summary["variants"]) == 2
    assert "| *" in (out / "sweep.md").read_text()
    for name in ("sweep_map.png", "sweep_curves.png", "lr-0.02/eval.json", "lr-0.05/last.pt"):
        assert (out / name).is_file(), name
    printed = " ".join(first.stdout.split())
    assert "2 of 2 variants ran" in printed and "best (*)" in printed

    recipe = load_recipe(recipe_path)
    variants = make_variants(recipe, [parse_set("train.lr=0.02,0.05")], epochs=2)
    data_decisions, results = run_sweep(recipe, recipe_path, out, variants, progress=False)
    assert {d.action for d in data_decisions} == {"skip", "off"}, [(d.stage, d.reason) for d in data_decisions]
    assert all(d.action == "skip" for r in results for d in r.decisions), [
        (d.stage, d.action, d.reason) for r in results for d in r.decisions]
