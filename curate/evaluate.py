"""``curate evaluate --model RUN``: predict on a view, measure, and write every box's verdict back.

Reads: a run folder (``best.pt`` or ``last.pt``: weights, recipe, classes), the usable samples of a split,
their ``ground_truth``. Writes, with the names FiftyOne's ``evaluate_detections`` uses so the App's filters
work on them: the field ``predictions`` (boxes with ``confidence``); on every predicted and ground-truth
box ``<key>`` ("tp" / "fp" / "fn"), ``<key>_id`` (the matched box) and ``<key>_iou``; per sample
``<key>_tp``, ``<key>_fp``, ``<key>_fn``; saved views of the failures; ``dataset.info["curate_eval"]`` and
``RUN/eval.json`` with VOC and COCO metrics, size bins, the confusion matrix and the time split.
Matching and metrics are trainer/metrics.py (pure numpy, equal to pycocotools).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from curate import schema
from curate.boxes import network_to_image_edges
from curate.errors import CurateError
from curate.evaluate_views import HIGH_CONFIDENCE

PREDICTIONS = "predictions"
INFO_EVAL = "curate_eval"
BATCH = 8


def load_run(run_dir: Path):
    """(model in eval mode, recipe, classes) from a run folder's best (else last) checkpoint."""
    import torch

    from curate.recipe import recipe_from_dict
    from trainer.build import model_from_recipe
    from trainer.checkpoint import load_checkpoint

    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise CurateError(f"{run_dir}: no best.pt or last.pt; fix: pass a run folder written by `curate train`")
    saved = load_checkpoint(path)
    recipe = recipe_from_dict(saved["recipe"], str(path))
    offline = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, pretrained=""),
                                  train=dataclasses.replace(recipe.train, init_from="", trainable_last_n=-1))
    model, _ = model_from_recipe(offline, saved["classes"], torch.device("cpu"))
    model.load_state_dict(saved["model"])
    return model.eval(), recipe, list(saved["classes"])


def network_input(pipeline, filepaths: list[str]):
    """The images at ``filepaths`` through the recipe's eval ``pipeline`` (resize), normalised: ``[N, 3, H, W]``."""
    from trainer.data import load_rgb, normalise

    empty = {"bboxes": np.zeros((0, 4)), "labels": np.zeros(0)}
    return normalise(np.stack([pipeline(image=load_rgb(path), **empty)["image"] for path in filepaths]))


def predict(model, recipe, rows, *, score_threshold: float, nms_iou: float,
            progress: bool | None = False) -> tuple[list[dict], dict]:
    """Detections in each original image's pixels, and the milliseconds per image spent per stage."""
    import torch

    from curate.progress import track
    from trainer.build import eval_pipeline

    pipeline, timing = eval_pipeline(recipe), {"preprocess": 0.0, "forward": 0.0, "postprocess": 0.0}
    out = []
    starts = range(0, len(rows), BATCH)
    for start in track(starts, total=len(starts), description="predict", unit="batch", enabled=progress):
        batch = rows[start:start + BATCH]
        t0 = time.perf_counter()
        tensor = network_input(pipeline, [r["filepath"] for r in batch])
        t1 = time.perf_counter()
        with torch.no_grad():
            cls_logits, loc = model(tensor)
        t2 = time.perf_counter()
        results = model.postprocess(cls_logits, loc, score_threshold, nms_iou)
        t3 = time.perf_counter()
        for r, res in zip(batch, results):
            out.append({"boxes": network_to_image_edges(res["boxes"].numpy(), r["size"], recipe.model.image_size,
                                                        recipe.model.resize_mode),
                        "scores": res["scores"].numpy(), "labels": res["labels"].numpy() - 1})
        for key, seconds in zip(timing, (t1 - t0, t2 - t1, t3 - t2)):
            timing[key] += seconds
    return out, {k: v / max(len(rows), 1) * 1000 for k, v in timing.items()}  # ms per image


def evaluate_dataset(dataset, run_dir: Path, *, split: str = "test", eval_key: str = "eval",
                     iou_threshold: float = 0.5, score_threshold: float = 0.01, nms_iou: float = 0.45) -> dict:
    """Predict with the run's model on ``split``, then :func:`score_and_write`; adds the time split and
    speed, and writes ``RUN/eval.json``."""
    from curate.evaluate_rows import ground_truth_rows
    from curate.evaluate_speed import measure_speed
    from curate.evaluate_write import new_prediction_docs

    check_eval_key(dataset, eval_key)
    view = split_view(dataset, split)
    model, recipe, classes = load_run(Path(run_dir))
    rows = ground_truth_rows(view, classes)
    detections, ms_per_image = predict(model, recipe, rows, score_threshold=score_threshold, nms_iou=nms_iou)
    new_prediction_docs(detections, rows, classes)
    report = score_and_write(dataset, view, rows, detections, classes, eval_key=eval_key,
                             pred_field=prediction_field(eval_key), iou_threshold=iou_threshold)
    report.update(run=str(run_dir), split=split, ms_per_image=ms_per_image,
                  speed=measure_speed(model, recipe, [r["filepath"] for r in rows], checkpoint_path(Path(run_dir)),
                                      score_threshold=score_threshold, nms_iou=nms_iou))
    (Path(run_dir) / "eval.json").write_text(json.dumps(report, indent=2))
    dataset.info[INFO_EVAL] = report
    dataset.save()
    return report


def evaluate_field(dataset, pred_field: str, *, split: str = "", eval_key: str = "eval",
                   iou_threshold: float = 0.5) -> dict:
    """Evaluate predictions already stored in ``pred_field`` (from another tool, or an earlier run):
    what ``dataset.evaluate_detections(pred_field, compute_mAP=True)`` does, with the same verdicts."""
    from curate.evaluate_rows import classes_of, ground_truth_rows, stored_predictions

    import fiftyone as fo

    schema_ = dataset.get_field_schema()
    detections = [name for name, f in schema_.items() if getattr(f, "document_type", None) is fo.Detections]
    if pred_field not in schema_ or pred_field == schema.GROUND_TRUTH or pred_field not in detections:
        raise CurateError(f"{dataset.name}: {pred_field!r} is not a Detections field of predictions; fix: pass "
                          f"--pred-field with one of {[d for d in detections if d != schema.GROUND_TRUTH]} or "
                          "evaluate a model with --model RUN")
    check_eval_key(dataset, eval_key)
    view = split_view(dataset, split)
    classes = classes_of(view, pred_field)
    rows = ground_truth_rows(view, classes, pred_field=pred_field)
    report = score_and_write(dataset, view, rows, stored_predictions(rows, classes), classes, eval_key=eval_key,
                             pred_field=pred_field, iou_threshold=iou_threshold)
    report.update(split=split, pred_field=pred_field)
    dataset.info[INFO_EVAL] = report
    dataset.save()
    return report


def prediction_field(eval_key: str) -> str:
    """Where a model's predictions go: ``predictions`` for the default key, ``predictions_<key>`` for
    another, so evaluating a second model under its own key keeps the first one's boxes and verdicts."""
    return PREDICTIONS if eval_key == "eval" else f"{PREDICTIONS}_{eval_key}"


def check_eval_key(dataset, eval_key: str) -> None:
    """Before any prediction time is spent: a key FiftyOne accepts, not clashing with a data field."""
    if not eval_key.isidentifier():
        raise CurateError(f"--eval-key {eval_key!r}: must be a Python identifier (letters, digits, _); fix: e.g. "
                          f"--eval-key {''.join(c if c.isalnum() else '_' for c in eval_key).strip('_') or 'eval'}")
    taken = set(dataset.get_field_schema()) - {f"{eval_key}_tp", f"{eval_key}_fp", f"{eval_key}_fn",
                                               prediction_field(eval_key)}
    if eval_key in taken or eval_key in (schema.GROUND_TRUTH, PREDICTIONS):
        raise CurateError(f"--eval-key {eval_key!r}: a field of {dataset.name} has that name; fix: pick another key")


def split_view(dataset, split: str):
    """The usable samples (not quarantined, readable) with ground truth, of one split tag ("" = all)."""
    from curate.clean import training_view

    view = training_view(dataset)
    if split:
        if split not in dataset.count_sample_tags():
            raise CurateError(f"{dataset.name}: no samples tagged {split!r}; fix: `curate balance "
                              f"{dataset.name} --split` or pass --split with an existing tag")
        view = view.match_tags(split)
    return view.exists(schema.GROUND_TRUTH)


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"


def score_and_write(dataset, view, rows, detections, classes, *, eval_key: str, pred_field: str,
                    iou_threshold: float) -> dict:
    """Match (the COCO rule, as FiftyOne's evaluate_detections), measure, write the verdicts and views."""
    from curate.evaluate_views import clean_views, failure_views, save_views
    from curate.evaluate_write import write_verdicts
    from trainer.metrics import EvalData, confusion_matrix, evaluate_voc, match_dataset, mislabelled_detections
    from trainer.metrics_coco import evaluate_coco, evaluate_size_bins

    data = EvalData.from_images([{"boxes": r["boxes"], "labels": r["labels"]} for r in rows], detections,
                                classes=list(range(len(classes))), image_sizes=[r["size"] for r in rows])
    matches = match_dataset(data, iou_threshold=iou_threshold, rule="coco")
    mislabelled = mislabelled_detections(data, iou_threshold=iou_threshold, score_threshold=HIGH_CONFIDENCE)
    voc, coco = evaluate_voc(data, iou_threshold=iou_threshold), evaluate_coco(data)
    bins, confusion = evaluate_size_bins(data), confusion_matrix(data, iou_threshold=iou_threshold,
                                                                 score_threshold=HIGH_CONFIDENCE)
    write_verdicts(view, rows, detections, matches, mislabelled, classes, key=eval_key, pred_field=pred_field,
                   iou_threshold=iou_threshold)
    views = save_views(dataset, {**failure_views(view, eval_key, pred_field, iou_threshold),
                                 **clean_views(dataset)})
    return {"dataset": dataset.name, "images": len(rows), "eval_key": eval_key, "pred_field": pred_field,
            "iou_threshold": iou_threshold, "matching": "coco rule (as FiftyOne's evaluate_detections)",
            "classes": classes,
            "voc_map50_all_point": voc.mean_ap_all_point, "voc_map50_11point": voc.mean_ap_11point,
            "voc_ap_per_class": dict(zip(classes, np.nan_to_num(voc.ap_all_point, nan=-1).tolist())),
            "coco": {k: float(v) for k, v in coco.stats.items()},
            "size_bins": {"labels": list(bins.labels), "ap": np.nan_to_num(bins.ap, nan=-1).tolist(),
                          "recall": np.nan_to_num(bins.recall, nan=-1).tolist()},
            "confusion": {"labels": [classes[i] if isinstance(i, (int, np.integer)) else str(i)
                                     for i in confusion.labels], "matrix": confusion.matrix.tolist(),
                          "wrong_detections": confusion.wrong, "score_threshold": HIGH_CONFIDENCE},
            "pr_curves": pr_curves(voc, classes), "views": views}


def pr_curves(voc, classes: list[str], points: int = 101) -> dict:
    """Per class, precision at ``points`` evenly spaced recall levels (the monotone envelope VOC
    integrates; 0 past the highest recall reached): small enough for eval.json, exact enough to plot."""
    levels = np.linspace(0.0, 1.0, points)
    curves = {}
    for name, recall, precision in zip(classes, voc.recall, voc.precision):
        recall, precision = np.asarray(recall, float), np.asarray(precision, float)
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
        at = np.searchsorted(recall, levels, side="left")
        curves[name] = {"recall": levels.round(4).tolist(),
                        "precision": [float(envelope[i]) if i < recall.size else 0.0 for i in at]}
    return curves
