"""``curate info``: what is in a dataset, as numbers and pictures.

Reads: ``ground_truth``, ``metadata``, ``source``, tags. Writes: nothing on the dataset; PNG plots in a
folder of the user's choice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from curate import schema

PERCENTILES = (0, 5, 25, 50, 75, 95, 100)


@dataclass
class DatasetSummary:
    name: str
    samples: int
    labeled: int
    unlabeled: int
    negatives: int  # annotated, no boxes
    boxes: int
    classes: dict[str, dict[str, int]]  # label -> {"instances", "images"}
    sources: dict[str, int]
    splits: dict[str, int]
    tags: dict[str, int]
    boxes_per_image: dict[str, float]
    box_width_px: dict[str, float] = field(default_factory=dict)
    box_height_px: dict[str, float] = field(default_factory=dict)
    box_area_fraction: dict[str, float] = field(default_factory=dict)
    box_aspect_w_over_h: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BoxTable:
    """Every ground-truth box as columns: label, pixel width/height, image size."""

    labels: list[str]
    width: np.ndarray
    height: np.ndarray
    image_area: np.ndarray


def summarize(dataset) -> DatasetSummary:
    labels_per_sample = dataset.values(f"{schema.GROUND_TRUTH}.detections.label")
    boxes = box_table(dataset)
    per_image = np.array([len(v) for v in labels_per_sample if v is not None], dtype=float)
    return DatasetSummary(
        name=dataset.name,
        samples=len(labels_per_sample),
        labeled=sum(v is not None for v in labels_per_sample),
        unlabeled=sum(v is None for v in labels_per_sample),
        negatives=sum(v is not None and len(v) == 0 for v in labels_per_sample),
        boxes=len(boxes.labels),
        classes=_class_counts(labels_per_sample),
        sources=dict(Counter(dataset.values(schema.SOURCE)).most_common()),
        splits={t: n for t, n in dataset.count_sample_tags().items()
                if t in (*schema.SPLIT_TAGS, schema.TAG_TRAINVAL)},
        tags=dict(sorted(dataset.count_sample_tags().items())),
        boxes_per_image=_describe(per_image),
        box_width_px=_describe(boxes.width),
        box_height_px=_describe(boxes.height),
        box_area_fraction=_describe(boxes.width * boxes.height / np.maximum(boxes.image_area, 1)),
        box_aspect_w_over_h=_describe(boxes.width / np.maximum(boxes.height, 1e-9)),
    )


def box_table(dataset) -> BoxTable:
    """Boxes of samples whose image size is known, in pixels."""
    labels = dataset.values(f"{schema.GROUND_TRUTH}.detections.label")
    rel = dataset.values(f"{schema.GROUND_TRUTH}.detections.bounding_box")
    widths = dataset.values("metadata.width")
    heights = dataset.values("metadata.height")
    out_labels, out_w, out_h, out_area = [], [], [], []
    for sample_labels, sample_boxes, w, h in zip(labels, rel, widths, heights):
        if not sample_labels or not w or not h:
            continue
        for label, box in zip(sample_labels, sample_boxes):
            if box is None:
                continue
            out_labels.append(label)
            out_w.append(box[2] * w)
            out_h.append(box[3] * h)
            out_area.append(w * h)
    return BoxTable(out_labels, np.array(out_w, float), np.array(out_h, float), np.array(out_area, float))


def _class_counts(labels_per_sample) -> dict[str, dict[str, int]]:
    instances: Counter = Counter()
    images: Counter = Counter()
    for sample_labels in labels_per_sample:
        if sample_labels:
            instances.update(sample_labels)
            images.update(set(sample_labels))
    return {label: {"instances": n, "images": images[label]} for label, n in instances.most_common()}


def _describe(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    stats = {f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}
    stats["mean"] = round(float(values.mean()), 4)
    return stats


def write_plots(dataset, summary: DatasetSummary, out_dir: Path) -> list[Path]:
    """Class histogram and box-size scatter as PNG files in ``out_dir``."""
    from curate import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    boxes = box_table(dataset)
    return [
        plots.class_histogram(summary.classes, out_dir / "classes.png", title=f"{summary.name}: classes"),
        plots.box_size_scatter(boxes.width, boxes.height, boxes.labels, out_dir / "box_sizes.png",
                               title=f"{summary.name}: box sizes (pixels)"),
    ]
