"""Grid-aware coverage: how well a set of SSD default boxes can match the ground truth.

Reads: nothing (pure functions on arrays; used by ``curate anchors`` and bench/bench_anchors.py).
Writes: nothing.

The measure is the rule the SSD loss uses to find positives (trainer.box_coder.match): a ground-truth box
is *covered* when at least one default box, at its real position on the feature-map grid
(``DefaultBoxes.xyxy()``, clipped exactly as the trainer clips it), overlaps it with IoU >= the matching
threshold (0.5). Reported with it: the mean best IoU, and the mean number of positive default boxes per
ground truth (how many priors the loss trains on that box), overall, per class and per size bin.

Ultralytics' autoanchor "best possible recall" (BPR) is a different, weaker quantity: it compares only
width/height *ratios* of a box and an anchor shape (``max(w/aw, aw/w, h/ah, ah/h) < 4``), as if every
anchor could sit exactly on every box's centre. It ignores positions, so a box half-way between two grid
centres counts as matched; on a coarse grid (stride 16-32 px) a 20 px logo can have BPR 1 and no default
box with IoU >= 0.5. Coverage here is computed at the real positions and cannot make that mistake.

Priors of other detectors (torchvision's ``ssd300_vgg16`` and ``ssdlite320_mobilenet_v3_large``) are
expressed as :class:`~trainer.priors.AnchorSpec` on their own grids (:func:`torchvision_default_specs`), so
the same function measures them side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from curate.anchor_grid import DEFAULT_IOU_THRESHOLD, grid_best_iou, nearest_centre_offsets
from trainer.priors import AnchorSpec, DefaultBoxes

IOU_CHUNK_ELEMENTS = 8_000_000  # ground truths x priors per box_iou call: 32 MB of float32 per chunk
PRUNE_MARGIN = 1e-4  # a (box, type) pair is measured with box_iou when its closed-form best IoU is this close


@dataclass(frozen=True)
class SizeBin:
    """Boxes with ``low <= sqrt(w * h) < high``, sizes relative to the input (``sqrt(area / (H * W))``)."""

    name: str
    low: float
    high: float


# Size bins of sqrt(area) relative to the input side. At a 300 px input: < 15 px, 15-30, 30-60, 60-120,
# >= 120 px. COCO's "small" (< 32 px at ~640 px) is about 0.05 of the side, so the first two bins split it.
SIZE_BINS: tuple[SizeBin, ...] = (
    SizeBin("tiny (<0.05)", 0.0, 0.05),
    SizeBin("small (0.05-0.1)", 0.05, 0.1),
    SizeBin("medium (0.1-0.2)", 0.1, 0.2),
    SizeBin("large (0.2-0.4)", 0.2, 0.4),
    SizeBin("huge (>=0.4)", 0.4, math.inf),
)


@dataclass(frozen=True)
class CoverageStats:
    count: int  # ground-truth boxes in this group
    covered: int  # of which at least one default box has IoU >= the threshold
    coverage: float  # covered / count (0.0 for an empty group)
    mean_best_iou: float  # mean over boxes of the best IoU with any default box
    mean_positives: float  # mean number of default boxes with IoU >= the threshold per box

    def to_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "covered": self.covered, "coverage": round(self.coverage, 6),
                "mean_best_iou": round(self.mean_best_iou, 6), "mean_positives": round(self.mean_positives, 4)}


@dataclass(frozen=True, eq=False)
class CoverageReport:
    overall: CoverageStats
    per_class: dict[Hashable, CoverageStats]  # empty when no labels were given
    per_size: dict[str, CoverageStats]  # every bin, in SIZE_BINS order (count 0 where no box falls)
    iou_threshold: float
    num_priors: int
    best_iou: np.ndarray  # [G] float32, per ground-truth box
    positives: np.ndarray  # [G] int64, per ground-truth box

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the statistics without the per-box arrays; class keys as strings."""
        return {"iou_threshold": self.iou_threshold, "num_priors": self.num_priors,
                "overall": self.overall.to_dict(),
                "per_class": {str(k): v.to_dict() for k, v in self.per_class.items()},
                "per_size": {k: v.to_dict() for k, v in self.per_size.items()}}


def coverage(gt_boxes_rel_xyxy: np.ndarray | torch.Tensor, priors: DefaultBoxes | torch.Tensor, *,
             iou_threshold: float = DEFAULT_IOU_THRESHOLD, labels: Sequence[Hashable] | None = None,
             size_bins: Sequence[SizeBin] = SIZE_BINS) -> CoverageReport:
    """Grid-aware coverage of ``gt_boxes_rel_xyxy`` (``[G, 4]`` corners relative to the network input,
    i.e. after the resize) by ``priors`` (a DefaultBoxes, or any ``[N, 4]`` relative ``xyxy`` tensor).

    Positives are counted with ``torchvision.ops.box_iou`` on ``DefaultBoxes.xyxy()`` in chunks of about
    ``IOU_CHUNK_ELEMENTS``, the loss's own arithmetic, so "covered" (at least one positive) is exactly what
    the matcher will find. Given a DefaultBoxes, the grid is used to skip what cannot matter: the best IoU
    of each box with each default-box type is exact in closed form (:func:`grid_best_iou`), and box_iou runs
    only for (box, type) pairs whose best IoU reaches the threshold. 100k boxes x 8,732 priors then take
    seconds; a plain tensor of priors is compared with every box in full. A box without area has IoU 0:
    not covered. Unlike the loss, no box is force-matched to its best prior below the threshold.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"coverage: iou_threshold must be in (0, 1], got {iou_threshold}")
    gt = torch.as_tensor(np.asarray(gt_boxes_rel_xyxy, dtype=np.float32)).reshape(-1, 4)
    if labels is not None and len(labels) != gt.shape[0]:
        raise ValueError(f"coverage: {gt.shape[0]} boxes but {len(labels)} labels")
    if isinstance(priors, DefaultBoxes):
        best, positives = _best_iou_and_positives_on_grid(gt, priors, iou_threshold)
        num_priors = len(priors)
    else:
        prior_xyxy = torch.as_tensor(priors, dtype=torch.float32).reshape(-1, 4)
        best, positives = _best_iou_and_positives(gt, prior_xyxy, iou_threshold)
        num_priors = prior_xyxy.shape[0]
    covered = positives > 0
    box_wh = (gt[:, 2:] - gt[:, :2]).clamp(min=0).numpy()
    sizes = np.sqrt(box_wh[:, 0] * box_wh[:, 1])
    per_size = {b.name: _stats(best, positives, covered, (sizes >= b.low) & (sizes < b.high))
                for b in size_bins}
    per_class: dict[Hashable, CoverageStats] = {}
    if labels is not None:
        label_array = np.asarray(labels, dtype=object)
        for label in sorted(set(label_array.tolist()), key=str):
            per_class[label] = _stats(best, positives, covered, label_array == label)
    return CoverageReport(overall=_stats(best, positives, covered, np.ones(len(best), dtype=bool)),
                          per_class=per_class, per_size=per_size, iou_threshold=float(iou_threshold),
                          num_priors=int(num_priors), best_iou=best, positives=positives)


def _best_iou_and_positives(gt: torch.Tensor, prior_xyxy: torch.Tensor,
                            iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every box against every prior, chunked."""
    count = gt.shape[0]
    best = np.zeros(count, dtype=np.float32)
    positives = np.zeros(count, dtype=np.int64)
    if count == 0 or prior_xyxy.shape[0] == 0:
        return best, positives
    rows = max(1, IOU_CHUNK_ELEMENTS // prior_xyxy.shape[0])
    with torch.no_grad():
        for start in range(0, count, rows):
            iou = box_iou(gt[start:start + rows], prior_xyxy).nan_to_num_(0.0)
            best[start:start + rows] = iou.max(dim=1).values.numpy()
            positives[start:start + rows] = (iou >= iou_threshold).sum(dim=1).numpy()
    return best, positives


def _best_iou_and_positives_on_grid(gt: torch.Tensor, priors: DefaultBoxes,
                                    iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU in closed form per default-box type; positives counted with box_iou's arithmetic, only
    for the (box, type) pairs that can have one and only over the grid cells near the box."""
    positives = np.zeros(gt.shape[0], dtype=np.int64)
    if gt.shape[0] == 0:
        return np.zeros(0, dtype=np.float32), positives
    height, width = priors.image_size
    corners = gt.numpy().astype(np.float64)
    centres_px = (corners[:, :2] + corners[:, 2:]) / 2 * np.array([width, height])
    wh_px = np.clip(corners[:, 2:] - corners[:, :2], 0, None) * np.array([width, height])
    types = _prior_types(priors)
    shapes = [[t.shape_px for t in types if t.layer == k] for k in range(priors.spec.num_layers)]
    offsets = nearest_centre_offsets(centres_px, priors.feature_map_sizes, priors.image_size, priors.steps)
    per_type = grid_best_iou(wh_px, offsets, shapes)  # [G, T]
    prior_xyxy = priors.xyxy()
    with torch.no_grad():
        for column, kind in enumerate(types):
            rows = np.flatnonzero(per_type[:, column] >= iou_threshold - PRUNE_MARGIN)
            if len(rows):
                positives[rows] += _count_positives(gt[torch.from_numpy(rows)], prior_xyxy, kind, iou_threshold)
    return per_type.max(axis=1).astype(np.float32), positives


@dataclass(frozen=True, eq=False)
class _PriorType:
    layer: int
    index: torch.Tensor  # [fh, fw] indices into the priors of this type, by grid row and column
    centres_x: np.ndarray  # [fw] relative
    centres_y: np.ndarray  # [fh] relative
    shape_px: tuple[float, float]
    shape_rel: tuple[float, float]


def _prior_types(priors: DefaultBoxes) -> list[_PriorType]:
    """DefaultBoxes' order is layer, row, column, type: each type's grid of indices, centres and shape."""
    height, width = priors.image_size
    types, start = [], 0
    per_locations = priors.boxes_per_location()
    for layer, ((fh, fw), per_location) in enumerate(zip(priors.feature_map_sizes, per_locations)):
        block = priors.cxcywh[start:start + fh * fw * per_location].reshape(fh, fw, per_location, 4)
        for kind in range(per_location):
            w, h = block[0, 0, kind, 2:].tolist()
            index = start + kind + per_location * torch.arange(fh * fw).reshape(fh, fw)
            types.append(_PriorType(layer, index, block[0, :, kind, 0].double().numpy(),
                                    block[:, 0, kind, 1].double().numpy(), (w * width, h * height), (w, h)))
        start += fh * fw * per_location
    return types


def _count_positives(gt: torch.Tensor, prior_xyxy: torch.Tensor, kind: _PriorType,
                     threshold: float) -> np.ndarray:
    """Positives of one prior type per box. IoU >= t needs the x overlap >= t * max(gw, pw) (IoU <= x overlap /
    max(gw, pw)), so |dx| <= (gw + pw) / 2 - t * max(gw, pw): only that window of columns (and likewise rows),
    one cell wider for rounding, is compared, with box_iou's float32 arithmetic."""
    g = gt.double().numpy()
    windows = []
    for axis, centres, prior_side in ((0, kind.centres_x, kind.shape_rel[0]),
                                      (1, kind.centres_y, kind.shape_rel[1])):
        side, middle = g[:, axis + 2] - g[:, axis], (g[:, axis + 2] + g[:, axis]) / 2
        reach = np.clip((side + prior_side) / 2 - threshold * np.maximum(side, prior_side), 0, None)
        first = np.clip(np.searchsorted(centres, middle - reach, side="left") - 1, 0, len(centres) - 1)
        last = np.clip(np.searchsorted(centres, middle + reach, side="right"), 0, len(centres) - 1)
        windows.append((first, last - first + 1))
    (col0, ncol), (row0, nrow) = windows
    counts = np.zeros(len(g), dtype=np.int64)
    order = np.argsort(ncol * nrow, kind="stable")  # similar windows together: little padding
    area = (ncol * nrow)[order]
    start = 0
    while start < len(order):
        # the longest run from start whose padded windows (run length x largest window) fit one chunk
        low, high = start + 1, len(order)
        while low < high:
            middle = (low + high + 1) // 2
            fits = (middle - start) * area[middle - 1] <= IOU_CHUNK_ELEMENTS
            low, high = (middle, high) if fits else (low, middle - 1)
        part = order[start:low]
        counts[part] = _window_positives(gt[torch.from_numpy(part)], prior_xyxy, kind, threshold,
                                         col0[part], ncol[part], row0[part], nrow[part])
        start = low
    return counts


def _window_positives(gt: torch.Tensor, prior_xyxy: torch.Tensor, kind: _PriorType, threshold: float,
                      col0: np.ndarray, ncol: np.ndarray, row0: np.ndarray, nrow: np.ndarray) -> np.ndarray:
    fh, fw = kind.index.shape
    cols = torch.from_numpy(col0)[:, None] + torch.arange(int(ncol.max()))[None, :]
    rows = torch.from_numpy(row0)[:, None] + torch.arange(int(nrow.max()))[None, :]
    valid = ((cols < torch.from_numpy(col0 + ncol)[:, None])[:, None, :]
             & (rows < torch.from_numpy(row0 + nrow)[:, None])[:, :, None])
    index = kind.index[rows.clamp(max=fh - 1)[:, :, None], cols.clamp(max=fw - 1)[:, None, :]]
    boxes = prior_xyxy[index]  # [B, rows, cols, 4]
    # torchvision.ops.box_iou's arithmetic, element by element (same float32 operations, same order)
    area_gt = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[:, None, None]
    area_prior = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    lt = torch.max(gt[:, None, None, :2], boxes[..., :2])
    rb = torch.min(gt[:, None, None, 2:], boxes[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = (inter / (area_gt + area_prior - inter)).nan_to_num_(0.0)
    return ((iou >= threshold) & valid).sum(dim=(1, 2)).numpy()


def _stats(best: np.ndarray, positives: np.ndarray, covered: np.ndarray, mask: np.ndarray) -> CoverageStats:
    count = int(mask.sum())
    if count == 0:
        return CoverageStats(0, 0, 0.0, 0.0, 0.0)
    hits = int(covered[mask].sum())
    return CoverageStats(count=count, covered=hits, coverage=hits / count,
                         mean_best_iou=float(best[mask].mean()), mean_positives=float(positives[mask].mean()))


# --------------------------------------------------------------------------------------------------------
# Prior sets: a spec on a grid, for side-by-side comparisons

TORCHVISION_SSD300 = "torchvision_ssd300_vgg16"
TORCHVISION_SSDLITE320 = "torchvision_ssdlite320_mobilenet_v3_large"
# torchvision.models.detection.ssd300_vgg16: DefaultBoxGenerator arguments and its maps at 300 x 300
_SSD300_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
_SSD300_SCALES = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
_SSD300_STEPS = [8, 16, 32, 64, 100, 300]
_SSD300_MAPS = ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1))
# torchvision.models.detection.ssdlite320_mobilenet_v3_large: its generator and maps at 320 x 320
_SSDLITE_RATIOS = [[2, 3] for _ in range(6)]
_SSDLITE_MIN_MAX_RATIO = (0.2, 0.95)
_SSDLITE_MAPS = ((20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1))


@dataclass(frozen=True)
class PriorSet:
    """An anchor spec on a concrete grid: everything DefaultBoxes needs."""

    name: str
    spec: AnchorSpec
    image_size: tuple[int, int]  # (height, width) of the network input
    feature_map_sizes: tuple[tuple[int, int], ...]
    steps: tuple[float, ...] | None = None  # px; None = input / map size (what build_ssd uses for a fit)
    torchvision_name: str | None = None  # set: priors() are torchvision's own boxes for that model

    def default_boxes(self) -> DefaultBoxes:
        """The trainer's default boxes for this spec and grid."""
        return DefaultBoxes(spec=self.spec, image_size=self.image_size,
                            feature_map_sizes=list(self.feature_map_sizes),
                            steps=list(self.steps) if self.steps else None)

    def priors(self) -> DefaultBoxes | torch.Tensor:
        """What :func:`coverage` should measure: the trainer's boxes, or for a torchvision set the boxes
        of torchvision's DefaultBoxGenerator itself (they differ where a centre falls outside the input:
        SSD300's 10x10 map with step 32 puts its last centres at 304 px; DefaultBoxes clamps them to 300)."""
        if self.torchvision_name:
            return torchvision_generator_xyxy(self.torchvision_name)
        return self.default_boxes()


def _torchvision_generator(name: str):
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

    if name == TORCHVISION_SSD300:
        generator = DefaultBoxGenerator(_SSD300_RATIOS, scales=_SSD300_SCALES, steps=_SSD300_STEPS)
        return generator, (300, 300), _SSD300_MAPS
    if name == TORCHVISION_SSDLITE320:
        low, high = _SSDLITE_MIN_MAX_RATIO
        return DefaultBoxGenerator(_SSDLITE_RATIOS, min_ratio=low, max_ratio=high), (320, 320), _SSDLITE_MAPS
    raise ValueError(f"unknown torchvision prior set {name!r} (known: {TORCHVISION_SSD300}, "
                     f"{TORCHVISION_SSDLITE320})")


def torchvision_default_specs() -> dict[str, PriorSet]:
    """torchvision's SSD300-VGG16 (8,732 boxes) and SSDlite320-MobileNetV3 (3,234 boxes) default boxes as
    AnchorSpecs on their own grids (``torchvision_name`` set, so ``priors()`` gives torchvision's own boxes).
    torchvision writes, per location, squares ``s_k`` and ``sqrt(s_k * s_k+1)`` then ``(r, 1/r)`` pairs; here
    that is ratios ``(1, r1, 1/r1, ...)`` plus the extra square: the same boxes in another order (tests
    compare them with DefaultBoxGenerator's output)."""
    sets = {}
    for name in (TORCHVISION_SSD300, TORCHVISION_SSDLITE320):
        generator, size, maps = _torchvision_generator(name)
        ratios = tuple((1.0, *(v for r in rs for v in (float(r), 1.0 / r))) for rs in generator.aspect_ratios)
        spec = AnchorSpec(scales=tuple(float(s) for s in generator.scales), aspect_ratios=ratios,
                          extra_square=True)
        steps = tuple(float(s) for s in generator.steps) if generator.steps else None
        sets[name] = PriorSet(name=name, spec=spec, image_size=size, feature_map_sizes=maps, steps=steps,
                              torchvision_name=name)
    return sets


def torchvision_generator_xyxy(name: str) -> torch.Tensor:
    """``[N, 4]`` relative corners straight from torchvision's DefaultBoxGenerator (order: torchvision's)."""
    from torchvision.models.detection.image_list import ImageList

    generator, (height, width), maps = _torchvision_generator(name)
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    features = [torch.zeros(1, 1, fh, fw) for fh, fw in maps]
    with torch.no_grad():
        absolute = generator(images, features)[0]
    return absolute / torch.tensor([width, height, width, height], dtype=absolute.dtype)


def model_prior_set(backbone: str, image_size_hw: tuple[int, int], *, spec: AnchorSpec | None = None,
                    width_mult: float = 1.0, name: str | None = None) -> PriorSet:
    """The priors trainer.model.build_ssd would give ``backbone`` at ``image_size_hw``: its maps from a
    dry run, and ``spec`` (with steps derived from the maps, as build_ssd does for a given spec) or, when
    None, the backbone's own default anchors and steps (trainer.model.default_anchors)."""
    from trainer.backbones import BACKBONES
    from trainer.model import default_anchors, feature_map_sizes

    size = (int(image_size_hw[0]), int(image_size_hw[1]))
    maps = tuple(feature_map_sizes(BACKBONES[backbone](image_size=size, width_mult=width_mult), size))
    steps = None
    if spec is None:
        spec, default_steps = default_anchors(backbone, size, len(maps))
        steps = tuple(float(s) for s in default_steps) if default_steps else None
    return PriorSet(name=name or f"{backbone}@{size[0]}x{size[1]}", spec=spec, image_size=size,
                    feature_map_sizes=maps, steps=steps)
