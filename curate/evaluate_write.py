"""Writing `curate evaluate`'s verdicts back, the way FiftyOne's ``evaluate_detections`` does, so the
App's evaluation panel, filters and ``load_evaluation_results`` work on them, but in bulk.

On every predicted and ground-truth box: ``<key>`` ("tp" / "fp" / "fn"), ``<key>_id`` (matched box),
``<key>_iou``; on predictions also ``<key>_best_iou`` (highest IoU with a ground truth of its class:
what "poor localisation" filters on) and ``<key>_confused_with`` (the class of the object a confident
false positive landed on). Per sample ``<key>_tp`` / ``_fp`` / ``_fn``. The run is registered as a
FiftyOne evaluation (``dataset.list_evaluations()``) with its matches.
"""

from __future__ import annotations

import bson
import numpy as np
from pymongo import UpdateOne

from curate import schema
from curate.boxes import edges_to_relative_xywh

WRITE_BATCH = 1000
TP, FP, FN = "tp", "fp", "fn"
NO_MATCH_ID = ""  # FiftyOne's value for an unmatched box (its IoU is None)


def new_prediction_docs(detections: list[dict], rows: list[dict], classes: list[str]) -> None:
    """Give model detections the document shape of a stored ``fo.Detection`` (in place)."""
    for det, row in zip(detections, rows):
        w, h = row["size"]
        det["docs"] = [{"_id": bson.ObjectId(), "_cls": "Detection", "attributes": {}, "tags": [],
                        "label": classes[label], "bounding_box": edges_to_relative_xywh(box.tolist(), w, h),
                        "confidence": float(score)}
                       for box, score, label in zip(det["boxes"], det["scores"], det["labels"])]


def write_verdicts(view, rows, detections, matches, mislabelled, classes, *, key: str, pred_field: str,
                   iou_threshold: float) -> None:
    method = _register(view, key, pred_field, iou_threshold)
    flat = view._dataset.get_field_schema(flat=True)
    for name in (f"{key}_best_iou", f"{key}_confused_with"):
        if f"{pred_field}.detections.{name}" not in flat:
            import fiftyone as fo

            kind = fo.FloatField if name.endswith("iou") else fo.StringField
            view._dataset.add_sample_field(f"{pred_field}.detections.{name}", kind)
    det_start = np.cumsum([0] + [len(d["docs"]) for d in detections])
    gt_start = np.cumsum([0] + [len(r["labels"]) for r in rows])
    fo_matches, ops = [], []
    for i, (row, det) in enumerate(zip(rows, detections)):
        gt_docs = _mark_ground_truth(row, det, matches, int(gt_start[i]), int(det_start[i]), key, fo_matches)
        _mark_predictions(row, det, matches, mislabelled, int(det_start[i]), int(gt_start[i]), classes, key,
                          gt_docs, fo_matches)
        ops.append(_update(row, det, key, pred_field))
    collection = view._dataset._sample_collection
    for start in range(0, len(ops), WRITE_BATCH):
        collection.bulk_write(ops[start:start + WRITE_BATCH], ordered=False)
    view._dataset.reload()
    _save_results(method, view, key, fo_matches, classes)


def _mark_ground_truth(row, det, matches, gt0: int, det0: int, key: str, fo_matches: list) -> dict:
    """Marks on every ground-truth document of the sample; returns the kept ones by id."""
    kept = {bid: gt0 + n for n, bid in enumerate(row["box_ids"])}
    by_id = {}
    for doc in ((row.get("gt_doc") or {}).get("detections") or []):
        k = kept.get(str(doc["_id"]))
        status = int(matches.gt_status[k]) if k is not None else -1
        matched = int(matches.gt_det[k]) if k is not None else -1
        doc[key] = {1: TP, 0: FN}.get(status)
        doc[f"{key}_id"] = str(det["docs"][matched - det0]["_id"]) if matched >= 0 else NO_MATCH_ID
        doc[f"{key}_iou"] = float(matches.gt_iou[k]) if matched >= 0 else None
        by_id[str(doc["_id"])] = doc
        if doc[key] == FN:
            fo_matches.append((doc["label"], None, None, None, str(doc["_id"]), None))
    return by_id


def _mark_predictions(row, det, matches, mislabelled, det0, gt0, classes, key, gt_docs, fo_matches) -> None:
    for j, doc in enumerate(det["docs"]):
        k = det0 + j
        status, gt = int(matches.det_status[k]), int(matches.det_gt[k])
        gt_doc = gt_docs.get(row["box_ids"][gt - gt0]) if gt >= 0 else None
        doc[key] = {1: TP, 0: FP}.get(status)
        doc[f"{key}_id"] = str(gt_doc["_id"]) if gt_doc is not None else NO_MATCH_ID
        doc[f"{key}_iou"] = float(matches.det_iou[k]) if gt_doc is not None else None
        doc[f"{key}_best_iou"] = float(matches.det_best_iou[k])
        other = int(mislabelled[k])
        doc[f"{key}_confused_with"] = classes[int(row["labels"][other - gt0])] if other >= 0 else None
        if doc[key] == TP:
            fo_matches.append((gt_doc["label"], doc["label"], doc[f"{key}_iou"], doc.get("confidence"),
                               doc[f"{key}_id"], str(doc["_id"])))
        elif doc[key] == FP:
            fo_matches.append((None, doc["label"], None, doc.get("confidence"), None, str(doc["_id"])))


def _update(row, det, key: str, pred_field: str) -> UpdateOne:
    verdicts = [d[key] for d in det["docs"]]
    gt_verdicts = [d[key] for d in ((row.get("gt_doc") or {}).get("detections") or [])]
    values = {f"{key}_tp": verdicts.count(TP), f"{key}_fp": verdicts.count(FP), f"{key}_fn": gt_verdicts.count(FN)}
    if not det.get("in_place"):
        values[pred_field] = {"_cls": "Detections", "detections": det["docs"]}
    elif row["pred_present"]:  # stored predictions: only their list changes (boxless ones kept); None stays None
        values[f"{pred_field}.detections"] = row["pred_all"]
    if row.get("gt_doc") is not None:
        values[schema.GROUND_TRUTH] = row["gt_doc"]
    return UpdateOne({"_id": bson.ObjectId(row["id"])}, {"$set": values})


def _register(view, key: str, pred_field: str, iou_threshold: float):
    """Declare the run and its fields exactly as ``evaluate_detections(method="coco")`` does."""
    import fiftyone as fo
    import fiftyone.utils.eval.coco as fouc

    if pred_field not in view._dataset.get_field_schema():
        view._dataset.add_sample_field(pred_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    _drop_extra_marks(view._dataset, key, pred_field)
    config = fouc.COCOEvaluationConfig(pred_field, schema.GROUND_TRUTH, iou=iou_threshold, classwise=True)
    method = config.build()
    method.register_run(view, key)
    method.register_samples(view, key)
    return method


def _drop_extra_marks(dataset, key: str, pred_field: str) -> None:
    """FiftyOne's cleanup of an earlier run with this key removes its own fields only; ours go too."""
    fields = {pred_field}
    if key in dataset.list_evaluations():
        fields.add(dataset.get_evaluation_info(key).config.pred_field)
    flat = dataset.get_field_schema(flat=True)
    for field in fields:
        for name in (f"{key}_best_iou", f"{key}_confused_with"):
            if f"{field}.detections.{name}" in flat:
                dataset.delete_sample_field(f"{field}.detections.{name}")


def _save_results(method, view, key: str, fo_matches: list, classes: list[str]) -> None:
    from fiftyone.utils.eval.detection import DetectionResults

    results = DetectionResults(view, method.config, key, fo_matches, classes=classes, backend=method)
    method.save_run_results(view, key, results)
    method.add_fields_to_sidebar_group(view, key, omit_fields=(method.config.pred_field, schema.GROUND_TRUTH))
