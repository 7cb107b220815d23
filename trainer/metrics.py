"""Detection metrics, part 1: inputs, per-box matching (COCO and VOC rules), VOC AP, confusion matrix.

Pure numpy, vectorised over images, so ``curate evaluate``, the report and the tests share one
implementation that is fast on large sets (pycocotools loops in Python per image, class and detection).
It never imports fiftyone, pymongo or torch; pycocotools is the reference in the tests and in
bench/bench_metrics.py, never a dependency. COCO AP and size bins are in trainer/metrics_coco.py, the
vectorised matching engine in trainer/metrics_match.py.

Inputs (:class:`EvalData`) are flat, one row per box with the index of its image. Boxes are absolute
``xyxy`` in continuous pixel edges (curate/boxes.py): the VOC devkit's "+1" on 1-based pixel indices is
already inside the edges, so no "+1" appears here.

Matching is per image and class; detections are visited by descending score, ties in input order
(pycocotools and the VOC devkit both use a stable sort). The two rules:

* ``"coco"`` (pycocotools COCOeval.evaluateImg): a detection takes, among ground truths not yet matched,
  the one with the highest IoU >= the threshold, preferring regular ground truths over ignored ones
  (crowd, difficult, or outside the area range); equal IoUs go to the later ground truth. Crowd ground
  truths can be matched many times and their IoU is intersection over the *detection's* area; any other
  ground truth, ignored or not, at most once (so a second detection on a difficult object is an FP).
  A detection matched to an ignored ground truth, or unmatched and outside the area range, is ignored:
  neither TP nor FP. pycocotools knows no ``difficult``: here it is ignored like a crowd, without the
  crowd's IoU and reuse; with no difficult flags the numbers are pycocotools'.
* ``"voc"`` (VOC devkit, voc_eval.py): a detection looks only at the ground truth it overlaps most, matched
  or not. IoU > threshold (strictly) and that ground truth free: TP; already taken: FP (a duplicate); it
  is difficult (or crowd): ignored. Otherwise FP. No limit on detections per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from trainer.metrics_match import (FP, IGNORED, TP, as_boxes, as_vector, box_area, box_iou, encode_labels,
                                   greedy_match, infer_classes, voc_match)

FN = 0  # a ground truth's status when no detection found it (TP = 1, IGNORED = -1 as for detections)
VOC_IOU_THRESHOLD = 0.5  # the PASCAL VOC criterion (Everingham et al., IJCV 2010)
# VOC 2007's 11 recall points 0, 0.1, ..., 1, built with np.arange as voc_eval.py does (the 4th point is
# 0.30000000000000004, so a recall of exactly 0.3 does not reach it there either)
VOC07_RECALL_POINTS = np.arange(0.0, 1.1, 0.1)
BACKGROUND = "background"
__all__ = ["EvalData", "Matches", "match_dataset", "match_detections", "VocResult", "evaluate_voc",
           "voc_ap_11point", "voc_ap_all_point", "voc_map50", "ConfusionResult", "confusion_matrix",
           "box_iou", "box_area", "TP", "FP", "FN", "IGNORED", "BACKGROUND"]


@dataclass(frozen=True, eq=False)
class EvalData:
    """Ground truth and detections of ``num_images`` images, one row per box.

    Labels are indices into ``classes``. ``gt_area`` is what the COCO area ranges test (the box area
    unless given, e.g. a COCO file's segment ``area``); ``image_sizes`` ``[I, 2]`` (width, height) is
    needed only for size bins.
    """

    classes: tuple
    num_images: int
    gt_image: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    det_image: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_labels: np.ndarray
    image_sizes: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, *, num_images: int, gt_image, gt_boxes, gt_labels, det_image, det_boxes,
                    det_scores, det_labels, classes: Sequence | None = None, gt_difficult=None,
                    gt_crowd=None, gt_area=None, image_sizes=None) -> "EvalData":
        """From flat arrays; labels are class names or ids (ints or strings), mapped onto ``classes``
        (default: the sorted union of all labels)."""
        gt_boxes, det_boxes = as_boxes("gt_boxes", gt_boxes), as_boxes("det_boxes", det_boxes)
        num_gt, num_det = len(gt_boxes), len(det_boxes)
        gt_image = as_vector("gt_image", gt_image, num_gt, np.int64)
        det_image = as_vector("det_image", det_image, num_det, np.int64)
        for name, image in (("gt_image", gt_image), ("det_image", det_image)):
            if len(image) and (image.min() < 0 or image.max() >= num_images):
                raise ValueError(f"{name}: image indices must lie in [0, {num_images}), got "
                                 f"[{image.min()}, {image.max()}]")
        det_scores = as_vector("det_scores", det_scores, num_det, np.float64)
        if not np.isfinite(det_scores).all():
            raise ValueError("det_scores: every score must be finite")
        gt_raw = as_vector("gt_labels", gt_labels, num_gt, None)
        det_raw = as_vector("det_labels", det_labels, num_det, None)
        classes = infer_classes(gt_raw, det_raw) if classes is None else tuple(classes)
        flags = {name: np.zeros(num_gt, bool) if value is None else as_vector(name, value, num_gt, bool)
                 for name, value in (("gt_difficult", gt_difficult), ("gt_crowd", gt_crowd))}
        area = box_area(gt_boxes) if gt_area is None else as_vector("gt_area", gt_area, num_gt, np.float64)
        if image_sizes is not None:
            image_sizes = np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)
            if len(image_sizes) != num_images or (image_sizes <= 0).any():
                raise ValueError(f"image_sizes: need {num_images} positive (width, height) pairs")
        return cls(classes=classes, num_images=int(num_images), gt_image=gt_image, gt_boxes=gt_boxes,
                   gt_labels=encode_labels(gt_raw, classes, "gt_labels"), gt_difficult=flags["gt_difficult"],
                   gt_crowd=flags["gt_crowd"], gt_area=area, det_image=det_image, det_boxes=det_boxes,
                   det_scores=det_scores, det_labels=encode_labels(det_raw, classes, "det_labels"),
                   image_sizes=image_sizes)

    @classmethod
    def from_images(cls, ground_truths: Sequence[Mapping], detections: Sequence[Mapping], *,
                    classes: Sequence | None = None, image_sizes=None) -> "EvalData":
        """From one mapping per image (the torchmetrics layout): ground truth ``boxes``, ``labels`` and
        optional ``difficult``, ``iscrowd``, ``area``; detections ``boxes``, ``scores``, ``labels``."""
        if len(ground_truths) != len(detections):
            raise ValueError(f"{len(ground_truths)} ground-truth images but {len(detections)} "
                             "detection images")

        def column(items, key, width=None):
            parts = [np.asarray(item[key]) for item in items]
            for i, part in enumerate(parts if width else ()):
                if part.size and (part.ndim != 2 or part.shape[1] != width):
                    raise ValueError(f"image {i}: {key} must be [N, {width}], got shape {list(part.shape)}")
            parts = [part.reshape(-1, width) if width else part.reshape(-1) for part in parts]
            return np.concatenate(parts) if parts else np.zeros((0, width) if width else 0)

        def optional(key):
            if not any(key in gt for gt in ground_truths):
                return None
            return np.concatenate([np.asarray(gt[key]) if key in gt else np.zeros(len(gt["labels"]), bool)
                                   for gt in ground_truths])

        gt_counts = [len(gt["labels"]) for gt in ground_truths]
        det_counts = [len(det["labels"]) for det in detections]
        index = np.arange(len(ground_truths))
        return cls.from_arrays(
            num_images=len(ground_truths), gt_image=np.repeat(index, gt_counts),
            gt_boxes=column(ground_truths, "boxes", 4), gt_labels=column(ground_truths, "labels"),
            det_image=np.repeat(index, det_counts), det_boxes=column(detections, "boxes", 4),
            det_scores=column(detections, "scores"), det_labels=column(detections, "labels"),
            classes=classes, gt_difficult=optional("difficult"), gt_crowd=optional("iscrowd"),
            gt_area=None if not any("area" in gt for gt in ground_truths) else column(ground_truths, "area"),
            image_sizes=image_sizes)

    @property
    def gt_ignored(self) -> np.ndarray:
        """Ground truth no rule counts: crowd regions and VOC ``difficult`` objects."""
        return self.gt_crowd | self.gt_difficult

    def group_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """One integer per (image, class), for detections and for ground truth."""
        classes = max(len(self.classes), 1)
        return self.det_image * classes + self.det_labels, self.gt_image * classes + self.gt_labels


# ---------------------------------------------------------------- per-box results, for write-back

@dataclass(frozen=True, eq=False)
class Matches:
    """Per-box outcome at one IoU threshold, aligned with the rows of the :class:`EvalData`.

    ``det_status``: TP / FP / IGNORED (matched a crowd or difficult ground truth, outside the area
    range, or beyond ``max_dets``). ``det_gt``: row of the matched ground truth (also for an ignored
    match), else -1. ``det_iou``: IoU with it, else 0. ``det_best_iou``: highest IoU with any ground
    truth of the same class in the image, matched or not (what a "poor localisation" view filters on;
    for a crowd it is intersection over the detection's area).
    ``gt_status``: TP (found) / FN (missed) / IGNORED; ``gt_det``: row of the first detection matched to
    it, else -1; ``gt_iou``: IoU with that detection, else 0.
    """

    det_status: np.ndarray
    det_gt: np.ndarray
    det_iou: np.ndarray
    det_best_iou: np.ndarray
    gt_status: np.ndarray
    gt_det: np.ndarray
    gt_iou: np.ndarray

    def counts_per_image(self, det_image: np.ndarray, gt_image: np.ndarray, num_images: int):
        """``(tp, fp, fn)``, each ``[num_images]`` ints (ignored boxes count nowhere)."""
        def count(image, mask):
            return np.bincount(image[mask], minlength=num_images)

        return (count(det_image, self.det_status == TP), count(det_image, self.det_status == FP),
                count(gt_image, self.gt_status == FN))


def match_dataset(data: EvalData, *, iou_threshold: float = VOC_IOU_THRESHOLD, rule: str = "coco",
                  area_range: tuple[float, float] | None = None, max_dets: int | None = None) -> Matches:
    """Match every image of ``data`` at one IoU threshold (module docstring: the two rules).

    ``area_range`` (COCO rule, closed interval on ``gt_area`` / detection box area) and ``max_dets``
    (COCO rule, per image and class) default to none.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold}")
    det_key, gt_key = data.group_keys()
    ignore = data.gt_ignored
    if rule == "voc":
        if area_range is not None or max_dets is not None:
            raise ValueError("area_range and max_dets apply to the COCO rule only")
        status, det_gt, best_iou = voc_match(det_key, data.det_scores, data.det_boxes, gt_key,
                                              data.gt_boxes, ignore, iou_threshold)
    elif rule == "coco":
        det_out = np.zeros(len(det_key), bool)
        if area_range is not None:
            low, high = area_range
            ignore = ignore | (data.gt_area < low) | (data.gt_area > high)
            det_area = box_area(data.det_boxes)
            det_out = (det_area < low) | (det_area > high)
        match, _, used, best_iou = greedy_match(det_key, data.det_scores, data.det_boxes, gt_key,
                                                 data.gt_boxes, data.gt_crowd, ignore[None],
                                                 [iou_threshold], max_dets=max_dets)
        det_gt = match[0, 0]
        matched = det_gt >= 0
        status = np.where(matched, np.where(ignore[np.maximum(det_gt, 0)], IGNORED, TP),
                          np.where(det_out, IGNORED, FP)).astype(np.int8)
        status[~used] = IGNORED
    else:
        raise ValueError(f"rule must be 'coco' or 'voc', got {rule!r}")
    return _finish(data, status, det_gt, best_iou, ignore)


def _finish(data: EvalData, status, det_gt, best_iou, gt_ignore) -> Matches:
    matched = np.flatnonzero(det_gt >= 0)
    det_iou = np.zeros(len(det_gt))
    det_iou[matched] = box_iou(data.det_boxes[matched], data.gt_boxes[det_gt[matched]],
                               data.gt_crowd[det_gt[matched]])
    # first detection (best score, ties in input order) per ground truth; crowds can have several
    first = matched[np.lexsort((-data.det_scores[matched], det_gt[matched]))]
    first = first[np.r_[True, det_gt[first][1:] != det_gt[first][:-1]]] if len(first) else first
    gt_det = np.full(len(data.gt_labels), -1, np.int64)
    gt_det[det_gt[first]] = first
    gt_iou = np.zeros(len(gt_det))
    gt_iou[det_gt[first]] = det_iou[first]
    gt_status = np.where(gt_ignore, IGNORED, np.where(gt_det >= 0, TP, FN)).astype(np.int8)
    return Matches(det_status=status, det_gt=det_gt, det_iou=det_iou, det_best_iou=best_iou,
                   gt_status=gt_status, gt_det=gt_det, gt_iou=gt_iou)


def match_detections(gt_boxes, gt_labels, det_boxes, det_scores, det_labels, *,
                     iou_threshold: float = VOC_IOU_THRESHOLD, rule: str = "coco", gt_difficult=None,
                     gt_crowd=None, gt_area=None, area_range: tuple[float, float] | None = None,
                     max_dets: int | None = None) -> Matches:
    """:func:`match_dataset` for one image; indices in the result are into this image's boxes."""
    data = EvalData.from_arrays(num_images=1, gt_image=np.zeros(len(gt_labels), np.int64), gt_boxes=gt_boxes,
                                gt_labels=gt_labels, det_image=np.zeros(len(det_labels), np.int64),
                                det_boxes=det_boxes, det_scores=det_scores, det_labels=det_labels,
                                gt_difficult=gt_difficult, gt_crowd=gt_crowd, gt_area=gt_area)
    return match_dataset(data, iou_threshold=iou_threshold, rule=rule, area_range=area_range,
                         max_dets=max_dets)


# ---------------------------------------------------------------- VOC AP

@dataclass(frozen=True, eq=False)
class VocResult:
    """VOC AP per class at one IoU threshold, both versions. A class with no counted ground truth
    (only difficult or crowd, or none) gets NaN and is left out of the means."""

    classes: tuple
    iou_threshold: float
    ap_11point: np.ndarray  # [K] VOC 2007: mean of the interpolated precision at 11 recall points
    ap_all_point: np.ndarray  # [K] VOC 2010+: area under the monotone precision envelope
    num_positives: np.ndarray  # [K] counted ground truth (neither difficult nor crowd)
    recall: tuple  # per class, recall after each detection in score order (for PR curves)
    precision: tuple  # per class, precision after each detection

    @property
    def mean_ap_11point(self) -> float:
        return _nan_mean(self.ap_11point)

    @property
    def mean_ap_all_point(self) -> float:
        return _nan_mean(self.ap_all_point)


def _nan_mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else float("nan")


def voc_ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2007: mean over recall points t in 0, 0.1, ..., 1 of max(precision where recall >= t)."""
    if not len(recall):
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, VOC07_RECALL_POINTS, side="left")  # recall never decreases
    reached = first < len(recall)
    return float(envelope[first[reached]].sum() / len(VOC07_RECALL_POINTS))


def voc_ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+: sum of recall steps times the precision envelope (devkit VOCap)."""
    steps = np.r_[0.0, recall, 1.0]
    envelope = np.maximum.accumulate(np.r_[0.0, precision, 0.0][::-1])[::-1]
    changed = np.flatnonzero(steps[1:] != steps[:-1])
    return float(np.sum((steps[changed + 1] - steps[changed]) * envelope[changed + 1]))


def evaluate_voc(data: EvalData, *, iou_threshold: float = VOC_IOU_THRESHOLD) -> VocResult:
    """VOC AP (11-point and all-point) per class: the VOC rule, then cumulative TP/FP over all images
    in score order (ties: image order, then input order)."""
    matches = match_dataset(data, iou_threshold=iou_threshold, rule="voc")
    num_classes = len(data.classes)
    positives = np.bincount(data.gt_labels[matches.gt_status != IGNORED], minlength=num_classes)
    order = np.lexsort((data.det_image, -data.det_scores, data.det_labels))
    bounds = np.searchsorted(data.det_labels[order], np.arange(num_classes + 1))
    ap_11, ap_all = np.full(num_classes, np.nan), np.full(num_classes, np.nan)
    recalls, precisions = [], []
    for k in range(num_classes):
        status = matches.det_status[order[bounds[k]:bounds[k + 1]]]
        tp, fp = np.cumsum(status == TP).astype(float), np.cumsum(status == FP).astype(float)
        recall = tp / positives[k] if positives[k] else np.zeros(0)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps) if positives[k] else np.zeros(0)
        if positives[k]:
            ap_11[k], ap_all[k] = voc_ap_11point(recall, precision), voc_ap_all_point(recall, precision)
        recalls.append(recall)
        precisions.append(precision)
    return VocResult(classes=data.classes, iou_threshold=iou_threshold, ap_11point=ap_11, ap_all_point=ap_all,
                     num_positives=positives, recall=tuple(recalls), precision=tuple(precisions))


def voc_map50(detections: Sequence[Mapping], ground_truths: Sequence[Mapping], *,
              use_07_metric: bool = False) -> float:
    """VOC mAP at IoU 0.5 of per-image ``{boxes, scores, labels}`` against ``{boxes, labels[, difficult]}``
    (the order trainer/run.py passes them): all-point unless ``use_07_metric``; NaN with no ground truth."""
    result = evaluate_voc(EvalData.from_images(ground_truths, detections))
    return result.mean_ap_11point if use_07_metric else result.mean_ap_all_point


# ---------------------------------------------------------------- confusion matrix

@dataclass(frozen=True, eq=False)
class ConfusionResult:
    """``matrix[i, j]``: ground truth of class i found by a detection labelled j. The last row
    (background) counts spurious detections, the last column ground truth nobody found."""

    labels: tuple  # the classes, then BACKGROUND
    matrix: np.ndarray  # [K + 1, K + 1] int64
    iou_threshold: float
    score_threshold: float

    @property
    def correct(self) -> int:
        return int(np.trace(self.matrix[:-1, :-1]))

    @property
    def mislabelled(self) -> int:
        return int(self.matrix[:-1, :-1].sum()) - self.correct

    @property
    def spurious(self) -> int:
        return int(self.matrix[-1, :-1].sum())

    @property
    def missed(self) -> int:
        return int(self.matrix[:-1, -1].sum())

    @property
    def wrong(self) -> int:
        """Wrong detections above the score threshold: mislabelled plus spurious."""
        return self.mislabelled + self.spurious


def confusion_matrix(data: EvalData, *, iou_threshold: float = VOC_IOU_THRESHOLD,
                     score_threshold: float = 0.5) -> ConfusionResult:
    """Confusion matrix with background, over detections scoring >= ``score_threshold``.

    Assignment, per image, in two passes so that a right detection is never counted as a confusion:
    1. same class, the COCO rule at ``iou_threshold``: the diagonal (equals the TP count of
       :func:`match_dataset` on the same detections). Detections that matched a crowd or difficult
       object, and those objects, are left out of the matrix.
    2. the detections still unmatched, by descending score, each take the unmatched ground truth of
       any class with the highest IoU >= ``iou_threshold``: the mislabelled detections.
    What is left: detections -> background row, ground truth -> background column.
    """
    keep, same_class, counted, free_gt, rest, other_class = _assign_confusions(data, iou_threshold,
                                                                               score_threshold)
    found = other_class >= 0
    background = len(data.classes)
    missed = np.ones(len(free_gt), bool)
    missed[other_class[found]] = False
    rows = np.r_[data.gt_labels[same_class[counted]], data.gt_labels[free_gt[other_class[found]]],
                 np.full(int((~found).sum()), background), data.gt_labels[free_gt[missed]]]
    cols = np.r_[data.det_labels[keep[counted]], data.det_labels[keep[rest[found]]],
                 data.det_labels[keep[rest[~found]]], np.full(int(missed.sum()), background)]
    size = background + 1
    matrix = np.bincount(rows * size + cols, minlength=size * size).reshape(size, size)
    return ConfusionResult(labels=(*data.classes, BACKGROUND), matrix=matrix, iou_threshold=iou_threshold,
                           score_threshold=score_threshold)


def _assign_confusions(data: EvalData, iou_threshold: float, score_threshold: float):
    """The two passes of :func:`confusion_matrix`: ``keep`` (rows of the scored detections), their
    same-class match ``same_class``, which of those count (``counted``), the ground truth left free
    (``free_gt``), the unmatched detections ``rest`` (positions in ``keep``) and the free ground truth
    each took, as a position in ``free_gt`` (``other_class``, -1 = none)."""
    keep = np.flatnonzero(data.det_scores >= score_threshold)
    det_key, gt_key = data.group_keys()
    ignore = data.gt_ignored
    boxes, scores = data.det_boxes[keep], data.det_scores[keep]
    same_class = greedy_match(det_key[keep], scores, boxes, gt_key, data.gt_boxes, data.gt_crowd,
                              ignore[None], [iou_threshold])[0][0, 0]
    hit = same_class >= 0
    counted = hit & ~ignore[np.maximum(same_class, 0)]
    free_gt = np.ones(len(gt_key), bool)
    free_gt[same_class[hit]] = False
    free_gt = np.flatnonzero(free_gt & ~ignore)
    rest = np.flatnonzero(~hit)
    none = np.zeros(len(free_gt), bool)
    other_class = greedy_match(data.det_image[keep[rest]], scores[rest], boxes[rest], data.gt_image[free_gt],
                               data.gt_boxes[free_gt], none, none[None], [iou_threshold])[0][0, 0]
    return keep, same_class, counted, free_gt, rest, other_class


def mislabelled_detections(data: EvalData, *, iou_threshold: float = VOC_IOU_THRESHOLD,
                           score_threshold: float = 0.0) -> np.ndarray:
    """Per detection, the row of the ground truth of another class it landed on (the confusion
    matrix's off-diagonal, same assignment), else -1."""
    keep, _, _, free_gt, rest, other_class = _assign_confusions(data, iou_threshold, score_threshold)
    out = np.full(len(data.det_labels), -1, np.int64)
    found = other_class >= 0
    out[keep[rest[found]]] = free_gt[other_class[found]]
    return out
