"""Geometry of SSD default boxes on their grid, in closed form: what a default box of a given shape can reach.

Reads: nothing. Writes: nothing. Used by curate/anchor_coverage.py (coverage), curate/anchor_fit.py and
curate/anchor_refine.py (fitting), and ``curate anchors`` (the too-small report, the scatter plot's shapes).

Conventions: boxes and default boxes in network-input pixels, ``(w, h)``; feature maps ``(h, w)`` cells;
centres where trainer.priors.DefaultBoxes puts them, ``(i + 0.5) * step`` with ``step = input / map`` unless
given, clamped to the input; default-box sides clipped to the input (DefaultBoxes' ``clip``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from trainer.priors import AnchorSpec

DEFAULT_IOU_THRESHOLD = 0.5  # SSD's matching threshold (trainer.box_coder.match's default)


def grid_centres_px(feature_map_size: tuple[int, int], input_size_hw: tuple[int, int],
                    step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Default-box centres of one layer in input pixels, ``(cy [fh], cx [fw])``, as DefaultBoxes places
    them: ``(i + 0.5) * step``, the step being ``input / map`` unless given."""
    (fh, fw), (height, width) = feature_map_size, input_size_hw
    step_y, step_x = (step, step) if step else (height / fh, width / fw)
    # DefaultBoxes clamps relative centres to [0, 1]; only explicit steps can push one past the edge
    cy, cx = (np.arange(fh) + 0.5) * step_y, (np.arange(fw) + 0.5) * step_x
    return np.minimum(cy, height), np.minimum(cx, width)


def nearest_centre_offsets(centres_xy: np.ndarray, feature_map_sizes: Sequence[tuple[int, int]],
                           input_size_hw: tuple[int, int],
                           steps: Sequence[float] | None = None) -> np.ndarray:
    """``[M, L, 2]``: per box and layer, ``|dx|, |dy|`` (px) from the box centre to the nearest centre."""
    centres_xy = np.asarray(centres_xy, dtype=np.float64).reshape(-1, 2)
    offsets = np.empty((centres_xy.shape[0], len(feature_map_sizes), 2))
    for layer, size in enumerate(feature_map_sizes):
        cy, cx = grid_centres_px(size, input_size_hw, steps[layer] if steps else None)
        for axis, grid in ((0, cx), (1, cy)):
            after = np.clip(np.searchsorted(grid, centres_xy[:, axis]), 0, len(grid) - 1)
            before = np.clip(after - 1, 0, len(grid) - 1)
            offsets[:, layer, axis] = np.minimum(np.abs(centres_xy[:, axis] - grid[after]),
                                                 np.abs(centres_xy[:, axis] - grid[before]))
    return offsets


def grid_best_iou(gt_wh: np.ndarray, offsets: np.ndarray,
                  shapes_px: Sequence[Sequence[tuple[float, float]]]) -> np.ndarray:
    """``[M, T]`` best IoU of each box with each default-box shape (T shapes over all layers, in layer
    order) anywhere on that shape's grid.

    IoU of two axis-aligned boxes of fixed sizes only falls as either centre offset grows, and the grid is
    a product of x and y centres, so the best default box of a shape is the one at the nearest centre
    (``offsets`` from :func:`nearest_centre_offsets`). Exact: equals the maximum over every default box of
    that shape (tests check it against box_iou), at ``M x T`` cost instead of ``M x N``.
    """
    layer_of = [layer for layer, shapes in enumerate(shapes_px) for _ in shapes]
    if not layer_of:
        return np.zeros((len(gt_wh), 0), dtype=gt_wh.dtype)
    pw, ph = (np.array(v, dtype=gt_wh.dtype) for v in zip(*(s for shapes in shapes_px for s in shapes)))
    gw, gh = gt_wh[:, 0:1], gt_wh[:, 1:2]
    near = offsets[:, layer_of, :]
    ox = np.minimum(np.minimum(gw, pw), (gw + pw) * 0.5 - near[..., 0])
    oy = np.minimum(np.minimum(gh, ph), (gh + ph) * 0.5 - near[..., 1])
    inter = np.clip(ox, 0, None)
    inter *= np.clip(oy, 0, None)
    union = gw * gh + pw * ph
    union -= inter
    return inter / np.maximum(union, np.finfo(inter.dtype).tiny)


def layer_strides_px(feature_map_sizes: Sequence[tuple[int, int]],
                     input_size_hw: tuple[int, int]) -> list[tuple[float, float]]:
    """(stride_y, stride_x) in px of each layer: input size / map size (DefaultBoxes' default steps)."""
    height, width = input_size_hw
    return [(height / fh, width / fw) for fh, fw in feature_map_sizes]


def anchor_shapes_px(spec: AnchorSpec, *, input_size_hw: tuple[int, int]) -> list[list[tuple[float, float]]]:
    """Per layer, the (w, h) in input pixels of each default-box type, in DefaultBoxes' order and after its
    clip (w <= W, h <= H): scales are relative to the height, so a ratio-r box is ``s sqrt(r) H`` wide.
    (The CLI's scatter plot draws these over the ground-truth w/h.)"""
    height, width = input_size_hw
    return [[(min(w * height, width), min(h * height, height)) for w, h in spec.shapes(layer)]
            for layer in range(spec.num_layers)]


def worst_case_iou(shapes_wh: np.ndarray, *, feature_map_sizes: Sequence[tuple[int, int]],
                   input_size_hw: tuple[int, int]) -> np.ndarray:
    """``[k, L]``: IoU of a box of each shape with a default box of the same shape on each layer, the box
    placed where it is farthest from every grid centre while still inside the input."""
    shapes_wh = np.asarray(shapes_wh, dtype=np.float64).reshape(-1, 2)
    height, width = input_size_hw
    result = np.zeros((len(shapes_wh), len(feature_map_sizes)))
    for layer, size in enumerate(feature_map_sizes):
        cy, cx = grid_centres_px(size, input_size_hw)
        for row, (w, h) in enumerate(shapes_wh):
            dx, dy = _worst_offset(w, width, cx), _worst_offset(h, height, cy)
            inter = max(w - dx, 0.0) * max(h - dy, 0.0)
            result[row, layer] = inter / (2 * w * h - inter)
    return result


def _worst_offset(size: float, extent: float, grid: np.ndarray) -> float:
    """Largest distance from a box centre in ``[size/2, extent - size/2]`` to its nearest grid centre."""
    low, high = (size / 2, extent - size / 2) if size < extent else (extent / 2, extent / 2)
    midpoints = (grid[1:] + grid[:-1]) / 2
    points = np.concatenate([[low, high], midpoints[(midpoints > low) & (midpoints < high)]])
    return float(np.abs(points[:, None] - grid[None, :]).min(axis=1).max())


# --------------------------------------------------------------------------------------------------------
# What any anchors could reach: the best possible IoU at an offset, the ceiling, boxes too small

TOO_SMALL_OFFSET_FRACTION = 0.25  # of the stride: mean |offset| of a random centre from its nearest centre
MAX_TOO_SMALL_EXAMPLES = 10
TOO_SMALL_RULE = ("best possible IoU (any default-box shape) < threshold when the box lies a quarter stride "
                  "from the nearest centre of the finest layer in x and in y")


def best_possible_iou(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Highest IoU that a default box of *any* shape can have with a box whose centre is ``u`` box-widths and
    ``v`` box-heights away from the default box's centre (``u = |dx| / w``, ``v = |dy| / h``).

    IoU is unchanged by scaling x or y alone, so take w = h = 1. Along one axis the overlap is the prior's
    side inside the box, ``(1 + p) / 2 - u`` across it, 1 around it; in every piece IoU is monotone in each
    side (the derivative's sign does not depend on that side), so the optimum sits where a side is exactly
    ``1 - 2u`` (prior flush inside) or ``1 + 2u`` (prior flush around): the best of four closed forms.
    """
    u, v = np.abs(np.asarray(u, dtype=np.float64)), np.abs(np.asarray(v, dtype=np.float64))
    inside_x, inside_y = np.clip(1 - 2 * u, 0, None), np.clip(1 - 2 * v, 0, None)
    return np.maximum.reduce([1 / ((1 + 2 * u) * (1 + 2 * v)),  # around in x and y
                              inside_x * inside_y,  # inside in x and y
                              inside_y / (1 + 2 * u * inside_y),  # around in x, inside in y
                              inside_x / (1 + 2 * v * inside_x)])  # inside in x, around in y


def coverage_ceiling(gt_boxes_rel_xyxy: np.ndarray, *, feature_map_sizes: Sequence[tuple[int, int]],
                     input_size_hw: tuple[int, int], steps: Sequence[float] | None = None,
                     iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> float:
    """The coverage no anchor spec on this grid can beat: the share of boxes for which *some* default-box
    shape at the nearest centre of some layer would reach the threshold (each box granted its own shape)."""
    corners = np.asarray(gt_boxes_rel_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(corners) == 0:
        return 0.0
    scale = np.array([input_size_hw[1], input_size_hw[0]], dtype=np.float64)
    wh = np.clip(corners[:, 2:] - corners[:, :2], 0, None) * scale
    offsets = nearest_centre_offsets((corners[:, :2] + corners[:, 2:]) / 2 * scale, feature_map_sizes,
                                     input_size_hw, steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        best = best_possible_iou(offsets[..., 0] / wh[:, 0:1], offsets[..., 1] / wh[:, 1:2]).max(axis=1)
    best[~(wh > 0).all(axis=1)] = 0.0
    return float((best >= iou_threshold).mean())


@dataclass(frozen=True)
class TooSmallReport:
    """Boxes too small for the finest layer: lying a quarter stride from its nearest centre in x and in y (the
    mean offset of a uniformly placed box), not even the best-shaped default box reaches the matching
    threshold (:func:`best_possible_iou`). No anchor choice fixes them: a square at the limit (side 1.21
    strides at IoU 0.5) can be matched at 58 % of its possible positions, smaller boxes at fewer. They need
    a finer map or a larger input. Boxes without area (w or h <= 0) count too."""

    count: int  # boxes too small (degenerate ones included)
    degenerate: int  # of which without area
    total: int
    examples: tuple[int, ...]  # indices into the boxes given, smallest first (at most MAX_TOO_SMALL_EXAMPLES)
    finest_stride_px: tuple[float, float]  # (y, x)
    min_square_side_px: float  # a square with a smaller side is too small
    iou_threshold: float

    @property
    def fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "degenerate": self.degenerate, "total": self.total,
                "fraction": round(self.fraction, 6), "examples": list(self.examples),
                "finest_stride_px": [round(v, 3) for v in self.finest_stride_px],
                "min_square_side_px": round(self.min_square_side_px, 3), "iou_threshold": self.iou_threshold,
                "rule": TOO_SMALL_RULE}


def too_small_mask(wh: np.ndarray, *, feature_map_sizes: Sequence[tuple[int, int]],
                   input_size_hw: tuple[int, int], iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> np.ndarray:
    """``[N]`` bool over box (w, h) in input px: too small for the finest layer (:class:`TooSmallReport`)."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    stride_y, stride_x = finest_stride_px(feature_map_sizes, input_size_hw)
    positive = (wh > 0).all(axis=1)
    safe = np.where(positive[:, None], wh, 1.0)
    best = best_possible_iou(TOO_SMALL_OFFSET_FRACTION * stride_x / safe[:, 0],
                             TOO_SMALL_OFFSET_FRACTION * stride_y / safe[:, 1])
    return ~positive | (best < iou_threshold)


def too_small_report(wh: np.ndarray, *, feature_map_sizes: Sequence[tuple[int, int]],
                     input_size_hw: tuple[int, int],
                     iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> TooSmallReport:
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    mask = too_small_mask(wh, feature_map_sizes=feature_map_sizes, input_size_hw=input_size_hw,
                          iou_threshold=iou_threshold)
    indices = np.flatnonzero(mask)
    smallest = indices[np.argsort(np.sqrt(np.clip(wh[indices].prod(axis=1), 0, None)), kind="stable")]
    stride = finest_stride_px(feature_map_sizes, input_size_hw)
    return TooSmallReport(count=int(mask.sum()), degenerate=int((~(wh > 0).all(axis=1)).sum()), total=len(wh),
                          examples=tuple(int(i) for i in smallest[:MAX_TOO_SMALL_EXAMPLES]),
                          finest_stride_px=stride, iou_threshold=iou_threshold,
                          min_square_side_px=_min_square_side(math.sqrt(stride[0] * stride[1]), iou_threshold))


def _min_square_side(stride: float, iou_threshold: float) -> float:
    """Side of the square at the too-small limit (bisection on the decreasing best_possible_iou)."""
    low, high = 0.0, 0.5  # u = offset / side
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if best_possible_iou(middle, middle) >= iou_threshold else (low, middle)
    return TOO_SMALL_OFFSET_FRACTION * stride / low if low > 0 else math.inf


def finest_stride_px(feature_map_sizes: Sequence[tuple[int, int]],
                     input_size_hw: tuple[int, int]) -> tuple[float, float]:
    return min(layer_strides_px(feature_map_sizes, input_size_hw), key=lambda s: s[0] * s[1])
