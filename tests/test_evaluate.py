"""`curate evaluate`: a trained model's verdicts written back, consistent, and equal to FiftyOne's own."""

from __future__ import annotations

import fiftyone as fo
import pytest

from curate import schema
from curate.evaluate import PREDICTIONS, evaluate_dataset
from curate.ingest import import_path
from curate.manifest import write_manifest
from curate.recipe import Recipe, recipe_from_dict, recipe_to_dict
from curate.synth import write_voc_folder
from trainer.run import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    name = "test-evaluate-module"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    import_path(write_voc_folder(root / "voc", 20, width=96, height=96, min_boxes=1, max_boxes=2),
                dataset_name=name, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(name)
    classes = sorted(dataset.distinct("ground_truth.detections.label"))
    manifest = write_manifest(dataset, root / "m.jsonl", splits={"train": "train", "val": "val"},
                              classes=classes).path
    data = recipe_to_dict(Recipe())
    data["model"].update(backbone="tiny", image_size=[64, 64])
    data["augment"]["preset"] = "none"
    data["train"].update(epochs=8, batch_size=8, workers=0, lr=0.05, val_every=8)
    run_training(recipe_from_dict(data), manifest, root / "run", progress=False)
    yield dataset, root / "run"
    fo.delete_dataset(name)


def test_verdicts_are_written_and_add_up(trained):
    dataset, run = trained
    report = evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    val = dataset.match_tags("val")
    gt_boxes = val.count("ground_truth.detections")
    predicted = val.count(f"{PREDICTIONS}.detections")
    assert sum(val.values("eval_tp")) + sum(val.values("eval_fn")) == gt_boxes
    assert sum(val.values("eval_tp")) + sum(val.values("eval_fp")) == predicted
    assert val.count_values("ground_truth.detections.eval").get("tp", 0) == sum(val.values("eval_tp"))
    assert report["images"] == len(val) and 0 <= report["voc_map50_all_point"] <= 1
    assert (run / "eval.json").is_file() and dataset.has_saved_view("eval-missed")
    assert set(report["ms_per_image"]) == {"preprocess", "forward", "postprocess"}


def test_counts_equal_fiftyones_evaluate_detections(trained):
    dataset, run = trained
    evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    val = dataset.match_tags("val")
    val.evaluate_detections(PREDICTIONS, gt_field=schema.GROUND_TRUTH, eval_key="fo", iou=0.5)
    for ours, theirs in (("eval_tp", "fo_tp"), ("eval_fp", "fo_fp"), ("eval_fn", "fo_fn")):
        assert val.values(ours) == val.values(theirs), ours
