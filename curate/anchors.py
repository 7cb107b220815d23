"""``curate anchors RECIPE --fit``: SSD default boxes fitted to the training view, written into the recipe.

Reads: the training view (``clean.training_view``, the recipe's train split), boxes of the kept classes,
``metadata``. Writes: with ``--fit``, an ``anchors:`` section in the recipe (or a new file) with the
statistics as a comment, and ``dataset.info["curate_anchors"]`` (what was fitted, from which view). The
fitting and the grid-aware coverage are curate/anchor_fit.py and curate/anchor_coverage.py.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate import schema
from curate.boxes import relative_xywh_to_edges

INFO_ANCHORS = "curate_anchors"
EXCLUDED_BOX_TAG = schema.BOX_TAG_EXCLUDED_CLASS


@dataclass
class BoxSample:
    boxes_px: np.ndarray  # [N, 4] absolute xyxy in each image's pixels
    image_wh: np.ndarray  # [N, 2]
    labels: list[str]
    view: str  # how the boxes were chosen, for the record


@dataclass
class AnchorReport:
    boxes: int
    view: str
    coverage: dict[str, dict] = field(default_factory=dict)  # anchor set -> CoverageReport.to_dict()
    fitted: dict | None = None
    written_to: str | None = None


def training_boxes(dataset, split_tag: str) -> BoxSample:
    from curate.clean import training_view

    view = training_view(dataset)
    if split_tag and split_tag in dataset.count_sample_tags():
        view = view.match_tags(split_tag)
    boxes, sizes, labels = [], [], []
    fields = ["metadata.width", "metadata.height", f"{schema.GROUND_TRUTH}.detections"]
    for width, height, detections in zip(*view.values(fields)):
        for det in detections or ():
            if det.bounding_box and width and EXCLUDED_BOX_TAG not in (det.tags or ()):
                boxes.append(relative_xywh_to_edges(det.bounding_box, width, height))
                sizes.append([width, height])
                labels.append(det.label)
    described = f"training view of {dataset.name}" + (f", tag {split_tag!r}" if split_tag else "")
    return BoxSample(np.asarray(boxes, float).reshape(-1, 4), np.asarray(sizes, float).reshape(-1, 2),
                     labels, described)


def relative_on_input(sample: BoxSample, input_hw: tuple[int, int], resize_mode: str) -> np.ndarray:
    """Boxes relative to the network input after the trainer's resize (stretch or letterbox)."""
    height, width = input_hw
    if resize_mode == "stretch":
        return sample.boxes_px / np.tile(sample.image_wh, 2)
    scale = np.minimum(height / sample.image_wh[:, 1], width / sample.image_wh[:, 0])[:, None]
    pad = (np.array([width, height]) - sample.image_wh * scale) / 2
    xyxy = sample.boxes_px * scale + np.tile(pad, 2)
    return xyxy / np.array([width, height, width, height])


def compare_and_fit(recipe, sample: BoxSample, *, fit: bool, seed: int = 0) -> tuple[AnchorReport, object]:
    from curate.anchor_coverage import coverage, model_prior_set, torchvision_default_specs
    from curate.anchor_fit import fit_anchor_spec, resized_box_sizes
    from trainer.build import anchor_spec

    m = recipe.model
    size = tuple(m.image_size)
    current = model_prior_set(m.backbone, size, spec=anchor_spec(recipe), width_mult=m.width_mult)
    gt_rel = relative_on_input(sample, size, m.resize_mode)
    report = AnchorReport(boxes=len(sample.labels), view=sample.view)
    sets = {"recipe (current)": current, **torchvision_default_specs()}
    result = None
    if fit:
        wh = resized_box_sizes(sample.boxes_px, sample.image_wh, input_size_hw=size, resize_mode=m.resize_mode)
        result = fit_anchor_spec(wh, feature_map_sizes=current.feature_map_sizes, input_size_hw=size,
                                 boxes_per_layer=current.spec.boxes_per_location(), seed=seed)
        sets["fitted"] = model_prior_set(m.backbone, size, spec=result.spec, width_mult=m.width_mult)
        report.fitted = result.to_dict()
    for name, prior_set in sets.items():
        report.coverage[name] = coverage(gt_rel, prior_set.priors(), labels=sample.labels).to_dict()
    return report, result


def anchors_yaml(spec, report: AnchorReport, current=None) -> str:
    """An ``anchors:`` section with the fit's statistics as a comment; keeps ``current``'s (the recipe's
    AnchorsSection) `fit` and `fit_seed` so rewriting the block never turns `curate run`'s fitting off."""
    cov = {k: v["overall"]["coverage"] for k, v in report.coverage.items()}
    lines = [f"# anchors fitted by `curate anchors --fit` on {dt.date.today()} from {report.view} "
             f"({report.boxes} boxes)",
             "# grid-aware coverage at IoU 0.5: " + ", ".join(f"{k} {v:.3f}" for k, v in cov.items()),
             "anchors:",
             f"  scales: [{', '.join(f'{s:g}' for s in spec.scales)}]",
             "  aspect_ratios:"]
    lines += [f"    - [{', '.join(f'{r:g}' for r in ratios)}]" for ratios in spec.aspect_ratios]
    lines.append(f"  extra_square: {str(spec.extra_square).lower()}")
    if current is not None and current.fit:
        lines.append("  fit: true")
    if current is not None and current.fit_seed:
        lines.append(f"  fit_seed: {current.fit_seed}")
    return "\n".join(lines) + "\n"


def write_into_recipe(text: str, section: str) -> str:
    """Replace the recipe's top-level ``anchors:`` block (and its comment lines just above) or append."""
    pattern = re.compile(r"(?m)^(#[^\n]*\n)*anchors:[^\n]*\n((?:[ \t]+[^\n]*\n|\n)*)")
    if pattern.search(text):
        return pattern.sub(lambda _: section, text, count=1)
    return text.rstrip("\n") + "\n" + section


def record_on_dataset(dataset, report: AnchorReport) -> None:
    dataset.info[INFO_ANCHORS] = {"at": dt.datetime.now().isoformat(timespec="seconds"), "view": report.view,
                                  "boxes": report.boxes, "fitted": report.fitted,
                                  "coverage": {k: v["overall"] for k, v in report.coverage.items()},
                                  "written_to": report.written_to}
    dataset.save()


def scatter(sample: BoxSample, recipe, spec, path: Path) -> Path:
    from curate.anchor_fit import resized_box_sizes
    from curate.anchor_grid import anchor_shapes_px
    from curate.plots import box_size_scatter

    size = tuple(recipe.model.image_size)
    wh = resized_box_sizes(sample.boxes_px, sample.image_wh, input_size_hw=size,
                           resize_mode=recipe.model.resize_mode)
    shapes = [shape for layer in anchor_shapes_px(spec, input_size_hw=size) for shape in layer]
    return box_size_scatter(wh[:, 0], wh[:, 1], sample.labels, path, anchors=shapes,
                            title=f"boxes on the {size[0]}x{size[1]} input, with the anchors")
