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

import bson
import numpy as np
from pymongo import UpdateOne

from curate import schema
from curate.boxes import edges_to_relative_xywh, relative_xywh_to_edges
from curate.errors import CurateError

PREDICTIONS = "predictions"
INFO_EVAL = "curate_eval"
HIGH_CONFIDENCE = 0.5  # a false positive above this is worth a person's look
POOR_LOCALISATION_IOU = 0.1  # a false positive overlapping its object this much was a localisation miss
BATCH = 8
WRITE_BATCH = 1000


def load_run(run_dir: Path):
    """(model in eval mode, recipe, classes) from a run folder's best (else last) checkpoint."""
    import torch

    from curate.recipe import recipe_from_dict
    from trainer.build import model_from_recipe
    from trainer.checkpoint import load_checkpoint

    path = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"
    saved = load_checkpoint(path)
    recipe = recipe_from_dict(saved["recipe"], str(path))
    offline = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, pretrained=""),
                                  train=dataclasses.replace(recipe.train, init_from="", trainable_last_n=-1))
    model, _ = model_from_recipe(offline, saved["classes"], torch.device("cpu"))
    model.load_state_dict(saved["model"])
    return model.eval(), recipe, list(saved["classes"])


def _ground_truth(view, classes: list[str]):
    """Per sample: id, filepath, (w, h), kept ground-truth boxes (abs xyxy), labels, their box ids."""
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    fields = ["_id", "filepath", "metadata.width", "metadata.height", f"{schema.GROUND_TRUTH}.detections"]
    for sample_id, path, w, h, dets in zip(*view.values(fields)):
        kept = [d for d in dets or () if d.label in index and d.bounding_box
                and schema.BOX_TAG_EXCLUDED_CLASS not in (d.tags or ())]
        boxes = np.array([relative_xywh_to_edges(d.bounding_box, w, h) for d in kept], float).reshape(-1, 4)
        rows.append({"id": sample_id, "filepath": path, "size": (w, h), "boxes": boxes,
                     "labels": np.array([index[d.label] for d in kept], int), "box_ids": [d.id for d in kept]})
    return rows


def predict(model, recipe, rows, *, score_threshold: float, nms_iou: float) -> tuple[list[dict], dict]:
    """Detections in each original image's pixels, and the seconds spent per stage."""
    import torch

    from trainer.build import eval_pipeline
    from trainer.data import NORMALISE_MEAN, NORMALISE_STD, load_rgb

    pipeline, timing = eval_pipeline(recipe), {"preprocess": 0.0, "forward": 0.0, "postprocess": 0.0}
    mean, std = torch.tensor(NORMALISE_MEAN).view(3, 1, 1), torch.tensor(NORMALISE_STD).view(3, 1, 1)
    out = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        t0 = time.perf_counter()
        images = [pipeline(image=load_rgb(r["filepath"]), bboxes=np.zeros((0, 4)), labels=np.zeros(0))["image"]
                  for r in batch]
        tensor = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        t1 = time.perf_counter()
        with torch.no_grad():
            cls_logits, loc = model(tensor)
        t2 = time.perf_counter()
        results = model.postprocess(cls_logits, loc, score_threshold, nms_iou)
        t3 = time.perf_counter()
        for r, res in zip(batch, results):
            out.append({"boxes": _to_original(res["boxes"].numpy(), r["size"], recipe),
                        "scores": res["scores"].numpy(), "labels": res["labels"].numpy() - 1})
        for key, seconds in zip(timing, (t1 - t0, t2 - t1, t3 - t2)):
            timing[key] += seconds
    return out, {k: v / max(len(rows), 1) * 1000 for k, v in timing.items()}  # ms per image


def _to_original(rel_xyxy: np.ndarray, size: tuple[int, int], recipe) -> np.ndarray:
    width, height = size
    if recipe.model.resize_mode == "stretch":
        return rel_xyxy * np.array([width, height, width, height])
    in_h, in_w = recipe.model.image_size
    scale = min(in_h / height, in_w / width)
    pad = np.array([(in_w - width * scale) / 2, (in_h - height * scale) / 2] * 2)
    return (rel_xyxy * np.array([in_w, in_h, in_w, in_h]) - pad) / scale


def evaluate_dataset(dataset, run_dir: Path, *, split: str = "test", eval_key: str = "eval",
                     iou_threshold: float = 0.5, score_threshold: float = 0.01, nms_iou: float = 0.45) -> dict:
    from curate.clean import training_view
    from trainer.metrics import EvalData, confusion_matrix, evaluate_voc, match_dataset
    from trainer.metrics_coco import evaluate_coco, evaluate_size_bins

    view = training_view(dataset)
    if split:
        if split not in dataset.count_sample_tags():
            raise CurateError(f"{dataset.name}: no samples tagged {split!r}; fix: `curate balance "
                              f"{dataset.name} --split` or pass --split with an existing tag")
        view = view.match_tags(split)
    model, recipe, classes = load_run(Path(run_dir))
    rows = _ground_truth(view.exists(schema.GROUND_TRUTH), classes)
    detections, ms_per_image = predict(model, recipe, rows, score_threshold=score_threshold, nms_iou=nms_iou)
    data = EvalData.from_images([{"boxes": r["boxes"], "labels": r["labels"]} for r in rows], detections,
                                classes=list(range(len(classes))), image_sizes=[r["size"] for r in rows])
    matches = match_dataset(data, iou_threshold=iou_threshold, rule="voc")
    voc, coco = evaluate_voc(data, iou_threshold=iou_threshold), evaluate_coco(data)
    bins, confusion = evaluate_size_bins(data), confusion_matrix(data, iou_threshold=iou_threshold,
                                                                 score_threshold=HIGH_CONFIDENCE)
    _write_back(dataset, rows, detections, data, matches, classes, eval_key)
    _save_failure_views(dataset, eval_key)
    report = {"run": str(run_dir), "dataset": dataset.name, "split": split, "images": len(rows), "eval_key": eval_key,
              "iou_threshold": iou_threshold, "classes": classes,
              "voc_map50_all_point": voc.mean_ap_all_point, "voc_map50_11point": voc.mean_ap_11point,
              "voc_ap_per_class": dict(zip(classes, np.nan_to_num(voc.ap_all_point, nan=-1).tolist())),
              "coco": {k: float(v) for k, v in coco.stats.items()},
              "size_bins": {"labels": list(bins.labels), "ap": np.nan_to_num(bins.ap, nan=-1).tolist(),
                            "recall": np.nan_to_num(bins.recall, nan=-1).tolist()},
              "confusion": {"labels": [classes[i] if isinstance(i, (int, np.integer)) else str(i)
                                       for i in confusion.labels], "matrix": confusion.matrix.tolist(),
                            "wrong_detections": confusion.wrong, "score_threshold": HIGH_CONFIDENCE},
              "pr_curves": pr_curves(voc, classes),
              "ms_per_image": ms_per_image}
    (Path(run_dir) / "eval.json").write_text(json.dumps(report, indent=2))
    dataset.info[INFO_EVAL] = report
    dataset.save()
    return report


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


def _write_back(dataset, rows, detections, data, matches, classes, key: str) -> None:
    _declare(dataset, key)
    det_offsets = np.cumsum([0] + [len(d["scores"]) for d in detections])
    gt_offsets = np.cumsum([0] + [len(r["labels"]) for r in rows])
    verdict = {1: "tp", 0: "fp"}
    ops = []
    for i, (row, det) in enumerate(zip(rows, detections)):
        det_ids = [bson.ObjectId() for _ in det["scores"]]
        w, h = row["size"]
        preds = []
        for j, (box, score, label) in enumerate(zip(det["boxes"], det["scores"], det["labels"])):
            k = det_offsets[i] + j
            status = int(matches.det_status[k])
            gt = int(matches.det_gt[k])
            doc = {"_id": det_ids[j], "_cls": "Detection", "attributes": {}, "tags": [], "label": classes[label],
                   "bounding_box": edges_to_relative_xywh(box.tolist(), w, h),
                   "confidence": float(score), key: verdict.get(status, "ignored"),
                   f"{key}_iou": float(matches.det_iou[k]) if gt >= 0 else None,
                   f"{key}_id": str(row["box_ids"][gt - gt_offsets[i]]) if gt >= 0 else None}
            preds.append(doc)
        gt_status = {str(bid): (int(matches.gt_status[gt_offsets[i] + n]), int(matches.gt_det[gt_offsets[i] + n]),
                                float(matches.gt_iou[gt_offsets[i] + n]))
                     for n, bid in enumerate(row["box_ids"])}
        ops.append(_sample_update(row["id"], preds, gt_status, det_ids, det_offsets[i], key))
    for start in range(0, len(ops), WRITE_BATCH):
        _apply(dataset, ops[start:start + WRITE_BATCH], key)


def _sample_update(sample_id, preds, gt_status, det_ids, det_offset, key):
    tp = sum(p[key] == "tp" for p in preds)
    fp = sum(p[key] == "fp" for p in preds)
    fn = sum(1 for status, _, _ in gt_status.values() if status == 0)
    return sample_id, preds, gt_status, det_ids, det_offset, {f"{key}_tp": tp, f"{key}_fp": fp, f"{key}_fn": fn}


def _apply(dataset, items, key: str) -> None:
    collection = dataset._sample_collection
    ids = [bson.ObjectId(i) for i, *_ in items]
    current = {doc["_id"]: doc for doc in collection.find({"_id": {"$in": ids}}, {schema.GROUND_TRUTH: 1})}
    ops = []
    for sample_id, preds, gt_status, det_ids, det_offset, counts in items:
        oid = bson.ObjectId(sample_id)
        gt = (current.get(oid) or {}).get(schema.GROUND_TRUTH)
        for det in (gt or {}).get("detections") or []:
            status, det_index, iou = gt_status.get(str(det["_id"]), (-1, -1, 0.0))
            det[key] = {1: "tp", 0: "fn"}.get(status, None)
            det[f"{key}_id"] = str(det_ids[det_index - det_offset]) if det_index >= 0 else None
            det[f"{key}_iou"] = iou if det_index >= 0 else None
        values = {PREDICTIONS: {"_cls": "Detections", "detections": preds}, **counts}
        if gt is not None:
            values[schema.GROUND_TRUTH] = gt
        ops.append(UpdateOne({"_id": oid}, {"$set": values}))
    if ops:
        collection.bulk_write(ops, ordered=False)


def _declare(dataset, key: str) -> None:
    import fiftyone as fo

    flat = dataset.get_field_schema(flat=True)
    if PREDICTIONS not in flat:
        dataset.add_sample_field(PREDICTIONS, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for field in (PREDICTIONS, schema.GROUND_TRUTH):
        for name, kind in ((key, fo.StringField), (f"{key}_id", fo.StringField), (f"{key}_iou", fo.FloatField)):
            if f"{field}.detections.{name}" not in flat:
                dataset.add_sample_field(f"{field}.detections.{name}", kind)
    for suffix in ("tp", "fp", "fn"):
        if f"{key}_{suffix}" not in flat:
            dataset.add_sample_field(f"{key}_{suffix}", fo.IntField)


def _save_failure_views(dataset, key: str) -> None:
    from fiftyone import ViewField as F

    views = {
        f"{key}-high-confidence-fp": dataset.filter_labels(
            PREDICTIONS, (F(key) == "fp") & (F("confidence") >= HIGH_CONFIDENCE)),
        f"{key}-missed": dataset.filter_labels(schema.GROUND_TRUTH, F(key) == "fn"),
        f"{key}-worst": dataset.match(F(f"{key}_fp") + F(f"{key}_fn") > 0).sort_by(
            F(f"{key}_fp") + F(f"{key}_fn"), reverse=True),
    }
    for name, view in views.items():
        dataset.save_view(name, view, overwrite=True)
