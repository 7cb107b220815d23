"""The boundary between curate and the trainer: a FiftyOne view snapshotted into a JSON Lines file.

Reads: the training view (``clean.training_view``: nothing quarantined or unusable), ``ground_truth``,
``metadata``, split tags, ``sample_weight``. Writes: a file whose first line is a header
``{"manifest_version", "dataset", "classes", "counts", "created_at"}`` and then one record per image:
``{"id", "filepath", "width", "height", "boxes": [[x0, y0, x1, y1], ...] (absolute pixel edges),
"labels": [...], "split", "weight"}``. The trainer reads only this file and the recipe, so it never talks
to MongoDB (DataLoader workers stay fork-safe, and training can run where the database is not reachable).

Boxes of classes outside ``classes`` and boxes tagged ``excluded_class`` are left out; unlabeled images
(no annotation) are left out unless ``curate balance --negatives`` chose them; annotated images with no
boxes are kept (they teach background).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from curate import schema
from curate.boxes import relative_xywh_to_edges
from curate.errors import CurateError

MANIFEST_VERSION = 1
SAMPLE_WEIGHT = schema.SAMPLE_WEIGHT  # 1.0 when absent
EXCLUDED_BOX_TAG = schema.BOX_TAG_EXCLUDED_CLASS
NEGATIVE_SELECTED_TAG = schema.TAG_NEGATIVE_SELECTED


@dataclass
class ManifestInfo:
    path: Path
    classes: list[str]
    counts: dict[str, int]  # split -> images
    boxes: dict[str, int]  # split -> boxes


def choose_classes(dataset, requested: tuple[str, ...] = ()) -> list[str]:
    """The recipe's classes, else those `curate clean` kept, else every label, sorted."""
    if requested:
        return list(requested)
    kept = (dataset.info.get(schema.INFO_CLEAN) or {}).get("report", {}).get("classes_kept")
    if kept:
        return sorted(kept)
    return sorted(dataset.distinct(f"{schema.GROUND_TRUTH}.detections.label"))


def write_manifest(dataset, path: Path, *, splits: dict[str, str], classes: list[str]) -> ManifestInfo:
    """``splits`` maps a manifest split name (train, val) to the sample tag that selects it."""
    from curate.clean import training_view

    from fiftyone import ViewField as F

    chosen_negative = F("tags").contains(NEGATIVE_SELECTED_TAG)  # curate balance --negatives
    view = training_view(dataset).match(F(schema.GROUND_TRUTH).exists() | chosen_negative)
    known = set(classes)
    records, counts, boxes = [], Counter(), Counter()
    selected = dataset.match_tags(schema.TAG_BALANCED).count() > 0
    for split, tag in splits.items():
        if not tag:
            continue
        split_view = view.match_tags(tag)
        if split == "train" and selected:  # `curate balance --select`: train on the subset (and the chosen
            # negatives); validation stays whole, so its numbers still describe the real distribution
            split_view = split_view.match(F("tags").contains(schema.TAG_BALANCED) | chosen_negative)
        for record in _records(split_view, split, known):
            records.append(record)
            counts[split] += 1
            boxes[split] += len(record["boxes"])
    if not counts.get("train"):
        raise CurateError(f"{dataset.name}: no usable training images tagged {splits.get('train')!r}; fix: "
                          f"tag a split (`curate balance --split`) or set data.train_split in the recipe")
    header = {"manifest_version": MANIFEST_VERSION, "dataset": dataset.name, "classes": classes,
              "counts": dict(counts), "boxes": dict(boxes),
              "created_at": dt.datetime.now().isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        handle.write(json.dumps(header) + "\n")
        for record in records:
            handle.write(json.dumps(record) + "\n")
    tmp.replace(path)
    return ManifestInfo(path, classes, dict(counts), dict(boxes))


def _records(view, split: str, known: set[str]):
    fields = ["id", "filepath", "metadata.width", "metadata.height", f"{schema.GROUND_TRUTH}.detections"]
    has_weight = SAMPLE_WEIGHT in view.get_field_schema()
    weights = view.values(SAMPLE_WEIGHT) if has_weight else None
    for i, (sample_id, filepath, width, height, detections) in enumerate(zip(*view.values(fields))):
        boxes, labels = [], []
        for det in detections or ():
            if det.label in known and det.bounding_box and EXCLUDED_BOX_TAG not in (det.tags or ()):
                boxes.append([round(v, 3) for v in relative_xywh_to_edges(det.bounding_box, width, height)])
                labels.append(det.label)
        weight = weights[i] if weights and weights[i] is not None else 1.0
        yield {"id": sample_id, "filepath": filepath, "width": width, "height": height, "boxes": boxes,
               "labels": labels, "split": split, "weight": float(weight)}
