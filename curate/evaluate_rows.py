"""What `curate evaluate` reads from the dataset, straight from MongoDB (no Sample objects: 5,000 images
read in well under a second): per sample the kept ground truth in pixels, and, for ``--pred-field``,
the stored predictions with their documents (updated in place, ids kept)."""

from __future__ import annotations

import bson
import numpy as np

from curate import schema
from curate.boxes import relative_xywh_to_edges

READ_BATCH = 5000


def ground_truth_rows(view, classes: list[str], pred_field: str | None = None) -> list[dict]:
    """Per sample: ``id``, ``filepath``, ``size`` (w, h), kept ground truth ``boxes`` (pixel edges xyxy),
    ``labels`` (indices into ``classes``), ``box_ids``, the raw ``gt_doc`` (its boxes get the verdicts);
    with ``pred_field`` also ``pred_docs`` (raw)."""
    index = {c: i for i, c in enumerate(classes)}
    ids = view.values("_id")
    projection = {"filepath": 1, "metadata.width": 1, "metadata.height": 1, schema.GROUND_TRUTH: 1}
    if pred_field:
        projection[pred_field] = 1
    rows = []
    for start in range(0, len(ids), READ_BATCH):
        chunk = [bson.ObjectId(i) for i in ids[start:start + READ_BATCH]]
        docs = {d["_id"]: d for d in view._dataset._sample_collection.find({"_id": {"$in": chunk}}, projection)}
        rows.extend(_row(docs[oid], index, pred_field) for oid in chunk if oid in docs)
    return rows


def _row(doc: dict, index: dict, pred_field: str | None) -> dict:
    meta = doc.get("metadata") or {}
    w, h = meta.get("width"), meta.get("height")
    kept = [d for d in _detections(doc, schema.GROUND_TRUTH) if d.get("label") in index and d.get("bounding_box")
            and schema.BOX_TAG_EXCLUDED_CLASS not in (d.get("tags") or ())]
    row = {"id": str(doc["_id"]), "filepath": doc["filepath"], "size": (w, h),
           "boxes": np.array([relative_xywh_to_edges(d["bounding_box"], w, h) for d in kept], float).reshape(-1, 4),
           "labels": np.array([index[d["label"]] for d in kept], int), "box_ids": [str(d["_id"]) for d in kept],
           "gt_doc": doc.get(schema.GROUND_TRUTH)}
    if pred_field:  # pred_docs are the same dicts as in pred_all: marks set on them are written in place
        row["pred_present"] = doc.get(pred_field) is not None
        row["pred_all"] = _detections(doc, pred_field)
        row["pred_docs"] = [d for d in row["pred_all"] if d.get("bounding_box")]
    return row


def _detections(doc: dict, field: str) -> list[dict]:
    return list((doc.get(field) or {}).get("detections") or [])


def stored_predictions(rows: list[dict], classes: list[str]) -> list[dict]:
    """The ``pred_docs`` of each row as detections in pixels (what :func:`curate.evaluate.predict` returns)."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for row in rows:
        w, h = row["size"]
        docs = row["pred_docs"]
        out.append({"boxes": np.array([relative_xywh_to_edges(d["bounding_box"], w, h) for d in docs],
                                      float).reshape(-1, 4),
                    "scores": np.array([d.get("confidence") or 0.0 for d in docs], float),
                    "labels": np.array([index[d["label"]] for d in docs], int), "docs": docs, "in_place": True})
    return out


def classes_of(view, pred_field: str) -> list[str]:
    """Every label in the ground truth or the predictions, sorted (a predicted class absent from the
    ground truth is kept: its detections are all false positives, as FiftyOne counts them)."""
    labels = set(view.distinct(f"{schema.GROUND_TRUTH}.detections.label"))
    return sorted(labels | set(view.distinct(f"{pred_field}.detections.label")))
