"""`curate evaluate`: a trained model's verdicts written back, consistent, and equal to FiftyOne's own."""

from __future__ import annotations

import fiftyone as fo
import pytest
from factories import train_tiny_run

from curate import schema
from curate.evaluate import PREDICTIONS, evaluate_dataset
from curate.ingest import import_path
from curate.synth import write_voc_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    name = "test-evaluate-module"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    import_path(write_voc_folder(root / "voc", 20, width=96, height=96, min_boxes=1, max_boxes=2),
                dataset_name=name, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(name)
    yield dataset, train_tiny_run(dataset, root, epochs=8, val_every=8)
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


def test_registered_as_a_fiftyone_evaluation_with_the_same_matches(trained):
    dataset, run = trained
    evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    assert "eval" in dataset.list_evaluations()
    results = dataset.load_evaluation_results("eval")
    val = dataset.match_tags("val")
    assert int((results.ytrue != results.missing).sum()) == val.count("ground_truth.detections")
    assert int((results.ypred != results.missing).sum()) == val.count(f"{PREDICTIONS}.detections")


def test_failure_views_hold_what_their_names_say(trained):
    from fiftyone import ViewField as F

    dataset, run = trained
    report = evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    for name, count in report["views"].items():
        assert dataset.load_saved_view(name).count() == count > 0
    if "eval-poor-localisation" in report["views"]:
        ious = dataset.load_saved_view("eval-poor-localisation").values(f"{PREDICTIONS}.detections.eval_best_iou",
                                                                          unwind=True)
        assert ious and all(0.1 <= v < 0.5 for v in ious)
    missed = dataset.load_saved_view("eval-missed").values("ground_truth.detections.eval", unwind=True)
    assert set(missed) == {"fn"}
    assert dataset.match(F("eval_fn") > 0).count() == report["views"]["eval-missed"]
    assert report["speed"]["params"] > 0 and report["speed"]["fps_batch1"] > 0


def test_stored_predictions_are_evaluated_like_fiftyone_does(trained):
    from curate.evaluate import evaluate_field

    dataset, run = trained
    evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    before = dataset.match_tags("val").values(f"{PREDICTIONS}.detections.id", unwind=True)
    report = evaluate_field(dataset, PREDICTIONS, split="val", eval_key="again")
    val = dataset.match_tags("val")
    assert val.values(f"{PREDICTIONS}.detections.id", unwind=True) == before  # updated in place, ids kept
    for suffix in ("tp", "fp", "fn"):
        assert val.values(f"again_{suffix}") == val.values(f"eval_{suffix}")
    assert report["images"] == len(val)


def test_class_confusion_and_poor_localisation_are_marked(dataset_name):
    from curate.evaluate import evaluate_field

    def det(label, box, confidence=None):
        return fo.Detection(label=label, bounding_box=box, confidence=confidence)

    dataset = fo.Dataset(dataset_name)
    meta = fo.ImageMetadata(width=100, height=100)
    dataset.add_samples([
        fo.Sample(filepath="/nowhere/a.jpg", metadata=meta,
                  ground_truth=fo.Detections(detections=[det("cat", [0.1, 0.1, 0.3, 0.3])]),
                  predictions=fo.Detections(detections=[det("dog", [0.1, 0.1, 0.3, 0.3], 0.9),
                                                        det("cat", [0.25, 0.25, 0.3, 0.3], 0.8)])),
        fo.Sample(filepath="/nowhere/b.jpg", metadata=meta,
                  ground_truth=fo.Detections(detections=[det("dog", [0.5, 0.5, 0.2, 0.2])]),
                  predictions=fo.Detections(detections=[det("dog", [0.5, 0.5, 0.2, 0.21], 0.7)])),
    ])
    report = evaluate_field(dataset, "predictions")
    confused = dataset.load_saved_view("eval-class-confusions")
    assert confused.values("predictions.detections.label", unwind=True) == ["dog"]
    assert confused.values("predictions.detections.eval_confused_with", unwind=True) == ["cat"]
    loose = dataset.load_saved_view("eval-poor-localisation").values("predictions.detections", unwind=True)
    assert [(d.label, d.eval) for d in loose] == [("cat", "fp")] and 0.1 <= loose[0].eval_best_iou < 0.5
    assert report["confusion"]["wrong_detections"] >= 1
    dataset.evaluate_detections("predictions", gt_field="ground_truth", eval_key="fo")
    for suffix in ("tp", "fp", "fn"):
        assert dataset.values(f"eval_{suffix}") == dataset.values(f"fo_{suffix}")


def test_a_second_key_keeps_the_first_models_boxes_and_views(trained):
    from curate.errors import CurateError

    dataset, run = trained
    evaluate_dataset(dataset, run, split="val", score_threshold=0.05)
    val = dataset.match_tags("val")
    ids = val.values(f"{PREDICTIONS}.detections.id", unwind=True)
    report = evaluate_dataset(dataset, run, split="train", eval_key="other", score_threshold=0.05)
    assert report["pred_field"] == "predictions_other"
    assert val.values(f"{PREDICTIONS}.detections.id", unwind=True) == ids  # untouched
    assert set(dataset.list_evaluations()) >= {"eval", "other"}
    for name in report["views"]:  # views hold the evaluated split only
        assert set(dataset.load_saved_view(name).distinct("tags")) & {"train"}
        assert not dataset.load_saved_view(name).match_tags("val")
    with pytest.raises(CurateError, match="identifier.*fix"):
        evaluate_dataset(dataset, run, split="val", eval_key="eval-2")


def test_stored_predictions_keep_boxless_detections_and_empty_samples(dataset_name):
    from curate.evaluate import evaluate_field

    dataset = fo.Dataset(dataset_name)
    meta = fo.ImageMetadata(width=100, height=100)
    gt = fo.Detections(detections=[fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.3, 0.3])])
    dataset.add_samples([
        fo.Sample(filepath="/nowhere/a.jpg", metadata=meta, ground_truth=gt,
                  predictions=fo.Detections(detections=[
                      fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.3, 0.3], confidence=0.9),
                      fo.Detection(label="cat", confidence=0.5)])),  # no box: not evaluated, still kept
        fo.Sample(filepath="/nowhere/b.jpg", metadata=meta, ground_truth=gt.copy()),  # never predicted
    ])
    evaluate_field(dataset, "predictions")
    a, b = dataset.values("predictions")
    assert [d.get_field("eval") if d.has_field("eval") else None for d in a.detections] == ["tp", None]
    assert len(a.detections) == 2 and b is None
    assert dataset.values("eval_fn") == [0, 1]
