"""The saved views `curate evaluate` leaves for review (``curate review`` opens them). Each is saved
only when it holds a sample, and an empty one left by an earlier run is removed."""

from __future__ import annotations

from curate import schema

HIGH_CONFIDENCE = 0.5  # a false positive above this is worth a person's look (and the confusion matrix's cut)
CLEAN_VIEW_PREFIX = "clean-"
POOR_LOCALISATION_IOU = 0.1  # a false positive overlapping its object at least this much was a localisation miss


def failure_views(evaluated, key: str, pred_field: str, iou_threshold: float) -> dict:
    """name -> view of the ``evaluated`` samples (not the whole dataset: another split may hold an older
    run's marks), in the order a reviewer should look at them."""
    from fiftyone import ViewField as F

    confident_fp = (F(key) == "fp") & (F("confidence") >= HIGH_CONFIDENCE)
    # errors a person would call errors: misses and confident false positives (a detector run at a low
    # score threshold leaves near-zero false positives on every image)
    errors = F(f"{key}_fn") + F(f"{pred_field}.detections").filter(confident_fp).length()
    best_iou = F(f"{key}_best_iou")
    return {
        f"{key}-worst": evaluated.match(errors > 0).sort_by(errors, reverse=True),
        f"{key}-high-confidence-fp": evaluated.filter_labels(pred_field, confident_fp).sort_by(
            F(f"{pred_field}.detections.confidence").max(), reverse=True),
        f"{key}-missed": evaluated.filter_labels(schema.GROUND_TRUTH, F(key) == "fn"),
        f"{key}-class-confusions": evaluated.filter_labels(pred_field, F(f"{key}_confused_with") != None),  # noqa: E711
        f"{key}-poor-localisation": evaluated.filter_labels(
            pred_field, confident_fp & (best_iou >= POOR_LOCALISATION_IOU) & (best_iou < iou_threshold)),
    }


def clean_views(dataset) -> dict:
    """What `curate clean` found, for the same review session: quarantined samples, duplicate groups."""
    from fiftyone import ViewField as F

    views = {f"{CLEAN_VIEW_PREFIX}quarantined": dataset.match_tags(schema.TAG_QUARANTINE)}
    flat = dataset.get_field_schema()
    groups = [name for name in (schema.EXACT_DUPLICATE_GROUP, schema.NEAR_DUPLICATE_GROUP) if name in flat]
    if groups:
        condition = F(groups[0]) != None  # noqa: E711
        for name in groups[1:]:
            condition = condition | (F(name) != None)  # noqa: E711
        views[f"{CLEAN_VIEW_PREFIX}duplicates"] = dataset.match(condition).sort_by(groups[-1])
    return views


def save_views(dataset, views: dict) -> dict:
    """Save the non-empty views (overwriting), drop stale empty ones; returns name -> sample count."""
    counts = {}
    for name, view in views.items():
        count = view.count()
        if count:
            dataset.save_view(name, view, overwrite=True)
            counts[name] = count
        elif dataset.has_saved_view(name):
            dataset.delete_saved_view(name)
    return counts
