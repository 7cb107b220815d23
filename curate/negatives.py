"""Hard-negative mining (`curate negatives --mine --model RUN`): run the model over the pool of background
images and add the ones it fires on most confidently to the next round's training set.

Pool: the images `curate balance --negatives` may draw from (no kept box, no box of an excluded class,
not quarantined, not a copy of a positive) that are not chosen yet and are in no split or in ``split``. Every detection on such an image is
a false positive; an image's hardness is its highest detection score. The hardest ``count`` get the tags
``negative_selected`` (so the manifest trains on them) and ``hard_negative``, a split tag if they had none,
the score in ``hard_negative_score`` and what fired in ``hard_negative_predictions``; the saved view
``hard-negatives`` lists them, hardest first. ``undo_mining`` takes exactly that back.
"""

from __future__ import annotations

import bson
import numpy as np
from pymongo import UpdateOne

from curate import schema
from curate.errors import CurateError

TAG_HARD_NEGATIVE = schema.TAG_HARD_NEGATIVE
SCORE_FIELD = "hard_negative_score"
PREDICTIONS_FIELD = "hard_negative_predictions"
ADDED_TAGS_FIELD = "hard_negative_added_tags"  # exactly what mining added, so undo removes only that
VIEW = "hard-negatives"
MIN_SCORE = 0.05  # detections below this do not count: NMS keeps thousands of near-zero boxes


def mine_hard_negatives(dataset, run_dir, *, count: int, split: str = "train", min_score: float = MIN_SCORE,
                        progress: bool | None = None) -> dict:
    from curate.balance import load_table, negative_candidates
    from curate.evaluate import load_run, predict

    if split not in schema.SPLIT_TAGS:
        raise CurateError(f"--split {split!r}: not a split; fix: one of {list(schema.SPLIT_TAGS)}")
    table = load_table(dataset)
    # images already in another split would not be trained on (or would shift validation): not in the pool
    pool = [table.ids[i] for i in negative_candidates(table)
            if schema.TAG_NEGATIVE_SELECTED not in table.tags[i] and table.splits[i] in (None, split)]
    if not pool:
        raise CurateError(f"{dataset.name}: no background images left to mine; fix: import some with "
                          "`curate balance DATASET --negatives-from FOLDER` (or `curate import FOLDER --name "
                          "DATASET --source negatives`)")
    model, recipe, classes = load_run(run_dir)
    rows = _rows(dataset, pool)
    detections, _ = predict(model, recipe, rows, score_threshold=min_score, nms_iou=0.45, progress=progress)
    scores = np.array([float(d["scores"].max()) if len(d["scores"]) else 0.0 for d in detections])
    order = np.argsort(-scores, kind="stable")
    chosen = [int(i) for i in order[:count] if scores[i] > 0]
    _tag(dataset, rows, detections, scores, chosen, classes, split)
    return {"pool": len(pool), "selected": len(chosen), "split": split, "min_score": min_score,
            "firing_images": int((scores > 0).sum()),
            "selected_score_min": float(scores[chosen].min()) if chosen else 0.0,
            "selected_score_median": float(np.median(scores[chosen])) if chosen else 0.0,
            "pool_score_median": float(np.median(scores)),
            "hardest": [{"filepath": rows[i]["filepath"], "score": float(scores[i]),
                         "label": classes[int(detections[i]["labels"][np.argmax(detections[i]["scores"])])]}
                        for i in chosen[:10]]}


def _rows(dataset, ids) -> list[dict]:
    view = dataset.select([str(i) for i in ids], ordered=True)
    return [{"id": i, "filepath": p, "size": (w, h)}
            for i, p, w, h in zip(*view.values(["id", "filepath", "metadata.width", "metadata.height"]))]


def _tag(dataset, rows, detections, scores, chosen, classes, split: str) -> None:
    import fiftyone as fo

    from curate.evaluate_write import new_prediction_docs

    if PREDICTIONS_FIELD not in dataset.get_field_schema():
        dataset.add_sample_field(PREDICTIONS_FIELD, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    if SCORE_FIELD not in dataset.get_field_schema():
        dataset.add_sample_field(SCORE_FIELD, fo.FloatField)
        dataset.add_sample_field(ADDED_TAGS_FIELD, fo.ListField, subfield=fo.StringField)
    picked = [rows[i] for i in chosen]
    found = [detections[i] for i in chosen]
    new_prediction_docs(found, picked, classes)
    docs = {str(d["_id"]): d for d in dataset._sample_collection.find(
        {"_id": {"$in": [bson.ObjectId(r["id"]) for r in picked]}}, {"tags": 1, ADDED_TAGS_FIELD: 1})}
    ops = []
    for row, det, i in zip(picked, found, chosen):
        current = docs[row["id"]].get("tags") or []
        added = [t for t in (schema.TAG_NEGATIVE_SELECTED, TAG_HARD_NEGATIVE) if t not in current]
        if not any(t in schema.SPLIT_TAGS for t in current):
            added.append(split)
        added = list(dict.fromkeys((docs[row["id"]].get(ADDED_TAGS_FIELD) or []) + added))  # and earlier rounds
        ops.append(UpdateOne({"_id": bson.ObjectId(row["id"])}, {"$set": {
            "tags": current + added, SCORE_FIELD: float(scores[i]), ADDED_TAGS_FIELD: added,
            PREDICTIONS_FIELD: {"_cls": "Detections", "detections": det["docs"]}}}))
    if ops:
        dataset._sample_collection.bulk_write(ops, ordered=False)
    dataset.reload()
    from fiftyone import ViewField as F

    dataset.save_view(VIEW, dataset.match_tags(TAG_HARD_NEGATIVE).sort_by(F(SCORE_FIELD), reverse=True),
                      overwrite=True)


def undo_mining(dataset) -> int:
    """Remove every mined negative: the tags mining added (and only those), the score, the predictions."""
    collection = dataset._sample_collection
    mined = list(collection.find({"tags": TAG_HARD_NEGATIVE}, {"tags": 1, ADDED_TAGS_FIELD: 1}))
    ops = [UpdateOne({"_id": doc["_id"]}, {
        "$set": {"tags": [t for t in doc["tags"] if t not in (doc.get(ADDED_TAGS_FIELD) or [TAG_HARD_NEGATIVE])]},
        "$unset": {SCORE_FIELD: "", PREDICTIONS_FIELD: "", ADDED_TAGS_FIELD: ""}}) for doc in mined]
    if ops:
        collection.bulk_write(ops, ordered=False)
    dataset.reload()
    if dataset.has_saved_view(VIEW):
        dataset.delete_saved_view(VIEW)
    return len(mined)
