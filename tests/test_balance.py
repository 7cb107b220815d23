"""`curate balance` on a real dataset: split tags, the KL selection, sampling weights, undo."""

from __future__ import annotations

import json
import shutil

import fiftyone as fo
import numpy as np
import pytest
from factories import box, make_labelimg_xml

from curate import schema
from curate.balance import (SAMPLE_WEIGHT, TAG_BALANCED, assign_splits, load_table, select_balanced,
                            undo_balance, write_weights)
from curate.balance_opt import target_distribution
from curate.clean import run_clean
from curate.ingest import import_path
from curate.manifest import write_manifest
from curate.synth import render_image

SKEW = {"common": 24, "mid": 8, "rare": 3}  # images per class, one box each, plus mixed images


@pytest.fixture
def skewed(tmp_path, dataset_name):
    root = tmp_path / "skewed"
    root.mkdir()
    i = 0
    for label, n in SKEW.items():
        for _ in range(n):
            image, _ = render_image(i, 96, 72, max_boxes=1)
            image.save(root / f"{i:03d}.jpg", quality=90)
            make_labelimg_xml(root / f"{i:03d}.xml", f"{i:03d}.jpg", (96, 72), [box(label, 5, 5, 40, 40)])
            i += 1
    shutil.copy(root / "000.jpg", root / "copy_of_000.jpg")  # a duplicate: must share 000's split
    make_labelimg_xml(root / "copy_of_000.xml", "copy_of_000.jpg", (96, 72), [box("common", 5, 5, 40, 40)])
    import_path(root, dataset_name=dataset_name, progress=False)
    return fo.load_dataset(dataset_name)


def _split_of(dataset, name):
    tags = dataset.match(fo.ViewField("filepath").ends_with("/" + name)).first().tags
    return [t for t in tags if t in ("train", "val", "test")]


def test_split_is_stratified_and_keeps_duplicates_together(skewed):
    report = assign_splits(skewed, load_table(skewed), {"train": 0.6, "val": 0.2, "test": 0.2},
                           resplit=False, seed=0)
    assert sum(report["table"][s]["images"] for s in ("train", "val", "test")) == len(skewed)
    assert _split_of(skewed, "000.jpg") == _split_of(skewed, "copy_of_000.jpg")
    counts = skewed.count_sample_tags()
    assert counts["train"] > counts["val"] >= 1 and counts["test"] >= 1
    again = assign_splits(skewed, load_table(skewed), {"train": 0.6, "val": 0.2, "test": 0.2},
                          resplit=False, seed=1)
    assert again["changed"] == 0  # existing splits are respected without --resplit


def test_selection_is_closer_to_uniform_than_random_and_capping(skewed):
    table = load_table(skewed)
    q = target_distribution(table.counts.sum(axis=0), "uniform")
    result = select_balanced(skewed, table, budget=12, budget_unit="images", target=q, seed=0)
    assert result["kl"] <= result["random_kl"] and result["kl"] <= result["capped_kl"]
    assert result["bound"] <= result["kl"] + 1e-9
    assert len(skewed.match_tags(TAG_BALANCED)) == 12 and skewed.has_saved_view(TAG_BALANCED)
    assert min(result["kept_per_class"].values()) >= 3  # no class vanishes (KL(q||p) direction)


def test_quarantined_samples_are_never_selected(skewed):
    run_clean(skewed, inspect_files=False, progress=False)  # quarantines nothing yet: add one by hand
    rare = skewed.match(fo.ViewField("ground_truth.detections.label").contains("rare")).first()
    rare.tags.append(schema.TAG_QUARANTINE)
    rare.save()
    table = load_table(skewed)
    assert rare.id not in [str(i) for i in table.ids]
    q = target_distribution(table.counts.sum(axis=0), "uniform")
    select_balanced(skewed, table, budget=9, budget_unit="images", target=q, seed=0)
    assert rare.id not in skewed.match_tags(TAG_BALANCED).values("id")


def test_weights_reach_the_manifest_and_undo_removes_them(skewed, tmp_path):
    table = load_table(skewed)
    q = target_distribution(table.counts.sum(axis=0), "uniform")
    result = write_weights(skewed, table, q)
    assert result["kl_weighted"] < 1e-6 < result["kl_uniform"]
    assign_splits(skewed, table, {"train": 1.0, "val": 0.0, "test": 0.0}, resplit=True, seed=0)
    info = write_manifest(skewed, tmp_path / "m.jsonl", splits={"train": "train"},
                          classes=sorted(SKEW))
    records = [json.loads(line) for line in info.path.read_text().splitlines()[1:]]
    by_label = {r["labels"][0]: r["weight"] for r in records}
    assert by_label["rare"] > by_label["mid"] > by_label["common"]
    assert np.isclose(np.mean([r["weight"] for r in records]), 1.0)
    undo_balance(skewed)
    assert SAMPLE_WEIGHT not in skewed.first() or skewed.first()[SAMPLE_WEIGHT] is None


def test_negatives_follow_the_ratio_and_the_rules(skewed, tmp_path):
    from curate.balance import TAG_NEGATIVE_SELECTED, select_negatives
    from curate.ingest import import_folder

    background = tmp_path / "background"
    background.mkdir()
    for i in range(20):
        image, _ = render_image(500 + i, 96, 72, max_boxes=0)
        image.save(background / f"bg_{i:02d}.jpg", quality=90)
    shutil.copy(tmp_path / "skewed" / "001.jpg", background / "copy_of_positive.jpg")
    import_folder(background, dataset_name=skewed.name, fmt="labelimg", source="negatives", progress=False)
    import_path(tmp_path / "skewed", dataset_name=skewed.name, progress=False)  # re-group duplicates
    excluded = skewed.match(fo.ViewField("filepath").ends_with("bg_00.jpg")).first()
    excluded.tags.append(schema.TAG_HAS_EXCLUDED_CLASS)
    excluded.save()
    result = select_negatives(skewed, load_table(skewed), ratio=2.0,
                              fractions={"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    chosen = skewed.match_tags(TAG_NEGATIVE_SELECTED).values("filepath")
    assert result["positives"] == sum(SKEW.values()) + 1 and len(chosen) == 18  # 36 positives / 2
    assert not any(p.endswith(("copy_of_positive.jpg", "bg_00.jpg")) for p in chosen)
    info = write_manifest(skewed, tmp_path / "m.jsonl", splits={"train": "train", "val": "val"},
                          classes=sorted(SKEW))
    records = [json.loads(line) for line in info.path.read_text().splitlines()[1:]]
    in_train_or_val = skewed.match_tags(TAG_NEGATIVE_SELECTED).match_tags(["train", "val"]).values("filepath")
    assert {r["filepath"] for r in records if r["filepath"] in chosen} == set(in_train_or_val)
    assert all(r["boxes"] == [] for r in records if r["filepath"] in chosen)


def test_training_uses_the_selection_and_validation_stays_whole(skewed, tmp_path):
    table = load_table(skewed)
    assign_splits(skewed, table, {"train": 0.7, "val": 0.3, "test": 0.0}, resplit=True, seed=0)
    q = target_distribution(table.counts.sum(axis=0), "uniform")
    select_balanced(skewed, load_table(skewed), budget=12, budget_unit="images", target=q, seed=0)
    info = write_manifest(skewed, tmp_path / "m.jsonl", splits={"train": "train", "val": "val"},
                          classes=sorted(SKEW))
    records = [json.loads(line) for line in info.path.read_text().splitlines()[1:]]
    train = {r["filepath"] for r in records if r["split"] == "train"}
    val = {r["filepath"] for r in records if r["split"] == "val"}
    assert train == set(skewed.match_tags(TAG_BALANCED).match_tags("train").values("filepath"))
    assert val == set(skewed.match_tags("val").values("filepath"))
    undo_balance(skewed)
    info = write_manifest(skewed, tmp_path / "m2.jsonl", splits={"train": "train"}, classes=sorted(SKEW))
    assert info.counts["train"] == len(skewed.match_tags("train"))
