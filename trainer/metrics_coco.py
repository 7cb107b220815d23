"""COCO detection metrics (pycocotools' COCOeval, reproduced) and AP / recall by object-size bins.

:func:`evaluate_coco` gives the numbers of pycocotools ``COCOeval(gt, dt, "bbox")`` with default
parameters (evaluate + accumulate + summarize) to floating-point noise (tests/test_trainer_metrics.py
checks 1e-6 on synthetic and real sets), many times faster: the matching is vectorised
(trainer/metrics_match.py) and the accumulation is a few array operations per class. What it reproduces:

* Per image and class, detections are sorted by score (stable: ties keep input order) and cut to the
  largest ``max_dets`` (100) before matching. ``maxDets`` 1 and 10 (AR@1, AR@10) also count per image
  *and class*, not per image.
* Matching: the COCO rule of trainer/metrics.py, in every (area range, IoU threshold) lane; IoU thresholds
  ``linspace(.5, .95, 10)`` capped at ``1 - 1e-10``.
* Area ranges are closed intervals, tested on the ground truth's ``area`` (a COCO file's ``area`` field,
  which for real COCO is the segment's area, not the box's) and on the detection's box area: an area of
  exactly 32^2 or 96^2 is in two ranges. A crowd (or difficult) ground truth is ignored in every range.
* Accumulation, per class: the detections of all images, in image order, stable-sorted by score (ties:
  image order, then rank in the image); ``precision = tp / (tp + fp + eps)``, made non-increasing from
  the right, read at recall thresholds ``linspace(0, 1, 101)`` with ``searchsorted(side="left")``, 0
  past the last recall reached; recall = the last recall reached.
* A class with no counted ground truth in a range gets -1 there, and summaries average every entry > -1
  (over thresholds, recall points and classes at once), -1 when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from trainer.metrics import VOC_IOU_THRESHOLD, EvalData
from trainer.metrics_match import box_area, greedy_match

# exactly pycocotools' Params.setDetParams (np.linspace, not np.arange, for exact threshold values)
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_MAX_DETS = (1, 10, 100)
COCO_AREA_RANGES = {"all": (0, 1e5 ** 2), "small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2),
                    "large": (96 ** 2, 1e5 ** 2)}  # pixels^2; 1e5^2 stands for "no upper limit"
# name -> (average precision?, IoU threshold or None for all, area range, max detections): COCOeval.stats
COCO_STATS = {
    "AP": (True, None, "all", 100), "AP50": (True, 0.5, "all", 100), "AP75": (True, 0.75, "all", 100),
    "AP_small": (True, None, "small", 100), "AP_medium": (True, None, "medium", 100),
    "AP_large": (True, None, "large", 100), "AR1": (False, None, "all", 1), "AR10": (False, None, "all", 10),
    "AR100": (False, None, "all", 100), "AR_small": (False, None, "small", 100),
    "AR_medium": (False, None, "medium", 100), "AR_large": (False, None, "large", 100),
}
# seed 002's object-size bins, as fractions of the image area: 0-5, 5-10, 10-20, 20-40, 40-60, 60-80, 80-100 %
DEFAULT_SIZE_BIN_EDGES = (0.0, 0.05, 0.10, 0.20, 0.40, 0.60, 0.80, 1.0)


@dataclass(frozen=True, eq=False)
class CocoResult:
    """pycocotools' ``eval`` arrays (same layout; -1 where undefined) and its 12 summary numbers."""

    classes: tuple
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_labels: tuple
    max_dets: tuple
    precision: np.ndarray  # [T, R, K, A, M]
    recall: np.ndarray  # [T, K, A, M]
    stats: dict  # COCO_STATS name -> float (-1 when undefined), as COCOeval.stats
    per_class: dict  # COCO_STATS name -> [K] floats, NaN where the class has no ground truth

    @property
    def stats_array(self) -> np.ndarray:
        """The 12 numbers in COCOeval.stats order."""
        return np.array([self.stats[name] for name in COCO_STATS])


def _accumulate(data: EvalData, *, gt_area, det_area, ranges, thresholds, max_dets):
    """Match in every lane, then pycocotools' accumulate: ``precision [T, R, K, A, M]``,
    ``recall [T, K, A, M]``, and per lane the ground truth found ``[A, T, G]`` and ignored ``[A, G]``."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    low, high = (np.asarray(ranges, dtype=np.float64)[:, i:i + 1] for i in (0, 1))
    gt_ignore = data.gt_ignored[None] | (gt_area < low) | (gt_area > high)
    det_key, gt_key = data.group_keys()
    match, rank, used, _ = greedy_match(det_key, data.det_scores, data.det_boxes, gt_key, data.gt_boxes,
                                        data.gt_crowd, gt_ignore, thresholds, max_dets=max(max_dets))
    matched = match >= 0
    num_areas, num_gt = gt_ignore.shape
    padded = np.concatenate([gt_ignore, np.zeros((num_areas, 1), bool)], axis=1)
    det_out = (det_area < low) | (det_area > high)
    matched_ignored = padded[np.arange(num_areas)[:, None, None], np.where(matched, match, num_gt)]
    counted = ~np.where(matched, matched_ignored, det_out[:, None, :])
    positives = np.stack([np.bincount(data.gt_labels[~ignore], minlength=len(data.classes))
                          for ignore in gt_ignore])
    precision, recall = _per_class(data, rank, used, matched & counted, ~matched & counted, positives,
                                   max_dets)
    found = np.zeros((num_areas, len(thresholds), num_gt), bool)
    a, t, d = np.nonzero(matched)
    found[a, t, match[a, t, d]] = True
    return precision, recall, found & ~gt_ignore[:, None, :], gt_ignore


def _per_class(data: EvalData, rank, used, true_positive, false_positive, positives, max_dets):
    """Per class and max-detections limit, the cumulative counts over all images in score order."""
    num_areas, num_thresholds, _ = true_positive.shape
    num_classes = len(data.classes)
    shape = (num_thresholds, num_classes, num_areas, len(max_dets))
    precision, recall = -np.ones((shape[0], len(COCO_RECALL_THRESHOLDS), *shape[1:])), -np.ones(shape)
    rows = np.flatnonzero(used)
    rows = rows[np.lexsort((rank[rows], data.det_image[rows], -data.det_scores[rows], data.det_labels[rows]))]
    bounds = np.searchsorted(data.det_labels[rows], np.arange(num_classes + 1))
    rows_rank = rank[rows]
    true_positive, false_positive = true_positive[:, :, rows], false_positive[:, :, rows]
    for k in range(num_classes):
        span, previous = slice(bounds[k], bounds[k + 1]), -1
        for m, limit in enumerate(max_dets):
            picked = rows_rank[span] < limit
            if picked.sum() == previous:  # limits are sorted: same count, same detections
                precision[..., k, :, m] = precision[..., k, :, m - 1]
                recall[..., k, :, m] = recall[..., k, :, m - 1]
                continue
            previous = picked.sum()
            tp_sum = np.cumsum(true_positive[:, :, span][:, :, picked], axis=2, dtype=np.float64)
            fp_sum = np.cumsum(false_positive[:, :, span][:, :, picked], axis=2, dtype=np.float64)
            for a in np.flatnonzero(positives[:, k]):
                precision[:, :, k, a, m], recall[:, k, a, m] = _curve(tp_sum[a], fp_sum[a], positives[a, k])
    return precision, recall


def _curve(tp_sum: np.ndarray, fp_sum: np.ndarray, positives: int):
    """``[T, n]`` cumulative counts -> interpolated precision ``[T, R]`` and final recall ``[T]``."""
    count = tp_sum.shape[1]
    rc = tp_sum / positives
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    precision = np.zeros((len(tp_sum), len(COCO_RECALL_THRESHOLDS)))
    for t in range(len(tp_sum)):
        first = np.searchsorted(rc[t], COCO_RECALL_THRESHOLDS, side="left")
        reached = first < count
        precision[t, reached] = envelope[t, first[reached]]
    return precision, (rc[:, -1] if count else np.zeros(len(tp_sum)))


def _select(result_arrays, iou_thresholds, area_labels, max_dets, *, ap, iou, area, max_det):
    """COCOeval.summarize's slicing: ``[T', R, K, 1]`` precision or ``[T', K, 1]`` recall."""
    precision, recall = result_arrays
    areas = [i for i, label in enumerate(area_labels) if label == area]
    limits = [i for i, limit in enumerate(max_dets) if limit == max_det]
    values = precision if ap else recall
    if iou is not None:
        values = values[np.where(iou == iou_thresholds)[0]]
    return values[:, :, :, areas, limits] if ap else values[:, :, areas, limits]


def _summaries(precision, recall, iou_thresholds, area_labels, max_dets):
    stats, per_class = {}, {}
    num_classes = precision.shape[2]
    for name, (ap, iou, area, max_det) in COCO_STATS.items():
        values = _select((precision, recall), iou_thresholds, area_labels, max_dets, ap=ap, iou=iou,
                         area=area, max_det=max_det)
        kept = values[values > -1]
        stats[name] = float(np.mean(kept)) if len(kept) else -1.0
        by_class = np.moveaxis(values, 2 if ap else 1, 0)
        by_class = by_class.reshape(num_classes, values.size // max(num_classes, 1))
        valid = by_class > -1
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class[name] = np.where(valid, by_class, 0.0).sum(axis=1) / valid.sum(axis=1)
    return stats, per_class


def evaluate_coco(data: EvalData, *, iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                  area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
                  max_dets: Sequence[int] = COCO_MAX_DETS) -> CocoResult:
    """COCO AP@[.5:.95], AP50, AP75, AP / AR by area, AR@1/10/100, overall and per class."""
    iou_thresholds, max_dets = np.asarray(iou_thresholds, dtype=np.float64), tuple(sorted(max_dets))
    precision, recall, _, _ = _accumulate(data, gt_area=data.gt_area, det_area=box_area(data.det_boxes),
                                          ranges=list(area_ranges.values()), thresholds=iou_thresholds,
                                          max_dets=max_dets)
    stats, per_class = _summaries(precision, recall, iou_thresholds, tuple(area_ranges), max_dets)
    return CocoResult(classes=data.classes, iou_thresholds=iou_thresholds,
                      recall_thresholds=COCO_RECALL_THRESHOLDS, area_labels=tuple(area_ranges),
                      max_dets=max_dets, precision=precision, recall=recall, stats=stats, per_class=per_class)


@dataclass(frozen=True, eq=False)
class SizeBinResult:
    """AP and recall by ground-truth box size as a fraction of the image area (bins ``[lo, hi)``, the
    last one open-ended). NaN where a bin (or a class in a bin) holds no counted ground truth."""

    edges: tuple
    labels: tuple  # "0-5%", "5-10%", ...
    iou_threshold: float
    num_gt: np.ndarray  # [B] counted ground truth in the bin
    ap: np.ndarray  # [B] mean over classes of the 101-point AP at iou_threshold (COCO's APs/APm/APl rule)
    recall: np.ndarray  # [B] ground truth found / counted, all classes pooled
    ap_per_class: np.ndarray  # [B, K]
    recall_per_class: np.ndarray  # [B, K]


def evaluate_size_bins(data: EvalData, *, edges: Sequence[float] = DEFAULT_SIZE_BIN_EDGES,
                       iou_threshold: float = VOC_IOU_THRESHOLD, max_dets: int = 100) -> SizeBinResult:
    """AP and recall per size bin, with COCO's area-range rule: ground truth outside the bin and
    unmatched detections outside it are ignored. Needs ``data.image_sizes``."""
    if data.image_sizes is None:
        raise ValueError("size bins need image sizes: build EvalData with image_sizes=[(width, height), ...]")
    edges = tuple(float(e) for e in edges)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be at least two increasing fractions, got {edges}")
    image_area = data.image_sizes[:, 0] * data.image_sizes[:, 1]
    gt_fraction = box_area(data.gt_boxes) / image_area[data.gt_image]
    det_fraction = box_area(data.det_boxes) / image_area[data.det_image]
    ranges = [(low, np.nextafter(high, -np.inf)) for low, high in zip(edges[:-2], edges[1:-1])]
    ranges.append((edges[-2], np.inf))
    precision, recall, found, ignore = _accumulate(data, gt_area=gt_fraction, det_area=det_fraction,
                                                   ranges=ranges, thresholds=[iou_threshold],
                                                   max_dets=(max_dets,))
    valid = precision[0, 0, :, :, 0] > -1  # [K, B]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap_per_class = np.where(valid[None], precision[0, :, :, :, 0], 0.0).mean(axis=0)
        num_gt = (~ignore).sum(axis=1)
        ap = np.where(valid, ap_per_class, 0.0).sum(axis=0) / valid.sum(axis=0)
        recall_all = found[:, 0].sum(axis=1) / num_gt
    labels = tuple(f"{low * 100:g}-{high * 100:g}%" for low, high in zip(edges[:-1], edges[1:]))
    return SizeBinResult(edges=edges, labels=labels, iou_threshold=iou_threshold, num_gt=num_gt, ap=ap,
                         recall=recall_all, ap_per_class=np.where(valid, ap_per_class, np.nan).T,
                         recall_per_class=np.where(valid, recall[0, :, :, 0], np.nan).T)
