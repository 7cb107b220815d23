"""Detection metrics engine: IoU and greedy matching of detections to ground truth, vectorised.

Internal to trainer/metrics.py and trainer/metrics_coco.py (the rules are described in metrics.py),
with the checks EvalData runs on its inputs.

Matching is per group (one image and class, or one image for class-agnostic matching). Groups holding
both detections and ground truth are padded into chunks ``[groups, detections, ground truths]`` of
similar shape (power-of-two buckets, so one crowded image does not pad every other one); then the VOC
rule is a handful of array operations, and the COCO rule one step per detection rank, each step over all
groups, area ranges and IoU thresholds at once: about as many numpy calls as the most crowded group has
detections, instead of pycocotools' Python loop per image, class, threshold and detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TP, FP, IGNORED = 1, 0, -1  # detection status codes (metrics.py re-exports them)
MAX_IOU_THRESHOLD = 1 - 1e-10  # pycocotools caps thresholds here so that a perfect box matches at t = 1
# Per chunk, at most this many padded (group x detection x ground truth) cells, and (group x lane x
# (detections + ground truths)) cells: keeps the matching's temporaries to a few tens of MB whatever the
# group sizes, while chunks stay large enough that numpy's per-call overhead does not dominate.
_CHUNK_CELLS = 250_000
_CHUNK_LANE_CELLS = 1_000_000


# ---------------------------------------------------------------- input checks (EvalData uses them)

def as_boxes(name: str, boxes) -> np.ndarray:
    """``[N, 4]`` float64 xyxy, finite, x1 >= x0 and y1 >= y0 (zero-area boxes are allowed)."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name}: boxes must be [N, 4] xyxy, got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: every coordinate must be finite")
    inverted = (array[:, 2:] < array[:, :2]).any(axis=1)
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise ValueError(f"{name}: box {i} {array[i].tolist()} has x1 < x0 or y1 < y0 (boxes are xyxy)")
    return array


def as_vector(name: str, values, length: int, dtype) -> np.ndarray:
    """A 1-D array of ``length`` values (one per box)."""
    array = np.asarray(values, dtype=dtype).reshape(-1) if len(values) else np.zeros(0, dtype or np.int64)
    if len(array) != length:
        raise ValueError(f"{name}: {len(array)} values for {length} boxes")
    return array


def infer_classes(gt_labels: np.ndarray, det_labels: np.ndarray) -> tuple:
    """The sorted union of the labels seen."""
    values = set(np.unique(gt_labels).tolist()) | set(np.unique(det_labels).tolist())
    try:
        return tuple(sorted(values))
    except TypeError:
        raise ValueError("labels mix numbers and strings; pass classes= to say which is which") from None


def encode_labels(labels: np.ndarray, classes: tuple, name: str) -> np.ndarray:
    """Labels (names or ids) as indices into ``classes``; an unknown label is an error, not dropped."""
    lookup = {value: i for i, value in enumerate(classes)}
    unique, inverse = np.unique(labels, return_inverse=True)
    codes = np.array([lookup.get(value, -1) for value in unique.tolist()], dtype=np.int64)
    if (codes < 0).any():
        raise ValueError(f"{name}: labels {unique[codes < 0].tolist()[:5]} are not in classes")
    return codes[inverse.reshape(-1)] if len(labels) else np.zeros(0, np.int64)


# ---------------------------------------------------------------- boxes

def box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of broadcast ``det_boxes [..., 4]`` and ``gt_boxes [..., 4]``, written as pycocotools' bbIou:
    ``inter / (det_area + gt_area - inter)``, or ``inter / det_area`` for a crowd ground truth."""
    w = np.minimum(det_boxes[..., 2], gt_boxes[..., 2]) - np.maximum(det_boxes[..., 0], gt_boxes[..., 0])
    h = np.minimum(det_boxes[..., 3], gt_boxes[..., 3]) - np.maximum(det_boxes[..., 1], gt_boxes[..., 1])
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    det_area = box_area(det_boxes)
    union = det_area + box_area(gt_boxes) - inter
    if gt_crowd is not None:
        union = np.where(gt_crowd, det_area, union)
    return np.divide(inter, union, out=np.zeros(np.shape(inter)), where=inter > 0)


# ---------------------------------------------------------------- grouping: one group per (image, class)

@dataclass(frozen=True, eq=False)
class _Chunk:
    """Groups holding both detections and ground truth, padded: ``det_rows [n, Dm]`` holds each group's
    detections best first, ``gt_rows [n, Gm]`` its ground truths in input order (-1 = padding); groups
    are sorted by detection count, descending, so ``active[r]`` groups have an r-th detection."""

    det_rows: np.ndarray
    gt_rows: np.ndarray
    active: np.ndarray


def _ranks(keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of every row within its run of equal keys, ``order`` sorting the keys."""
    rank = np.zeros(len(keys), np.int64)
    if len(keys):
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        run_start = np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
        rank[order] = np.arange(len(keys)) - run_start
    return rank


def _detection_ranks(det_key: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
    """Rank of each detection in its group by descending score, ties in input order (stable sort)."""
    return _ranks(det_key, np.lexsort((-det_scores, det_key)))


def _ceil_log2(values: np.ndarray) -> np.ndarray:
    return np.ceil(np.log2(np.maximum(values, 1))).astype(np.int64)


def _plan(num_dets: np.ndarray, num_gts: np.ndarray, lanes: int) -> list[np.ndarray]:
    """Split groups into chunks of similar shape (power-of-two buckets), each within the cell budgets."""
    bucket = _ceil_log2(num_dets) * 64 + _ceil_log2(num_gts)
    order = np.lexsort((-num_dets, bucket))
    edges = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1], True])
    plan = []
    for start, end in zip(edges[:-1], edges[1:]):
        dets, gts = int(num_dets[order[start]]), int(num_gts[order[start:end]].max())
        step = max(1, min(_CHUNK_CELLS // (dets * gts), _CHUNK_LANE_CELLS // (lanes * (dets + gts))))
        plan += [order[s:min(s + step, end)] for s in range(start, end, step)]
    return plan


def _layout(det_key, det_rank, det_used, gt_key, lanes: int) -> list[_Chunk]:
    """Chunks of the groups that hold both used detections and ground truth."""
    det_groups, det_count = np.unique(det_key[det_used], return_counts=True)
    gt_groups, gt_count = np.unique(gt_key, return_counts=True)
    pairs, in_det, in_gt = np.intersect1d(det_groups, gt_groups, assume_unique=True, return_indices=True)
    if not len(pairs):
        return []
    num_dets, num_gts = det_count[in_det], gt_count[in_gt]
    plan = _plan(num_dets, num_gts, lanes)
    chunk_of, position = np.empty(len(pairs), np.int64), np.empty(len(pairs), np.int64)
    for c, groups in enumerate(plan):
        chunk_of[groups], position[groups] = c, np.arange(len(groups))

    def rows_by_chunk(keys, used):
        group = np.searchsorted(pairs, keys).clip(max=len(pairs) - 1)
        rows = np.flatnonzero(used & (pairs[group] == keys))
        rows = rows[np.argsort(chunk_of[group[rows]], kind="stable")]
        bounds = np.searchsorted(chunk_of[group[rows]], np.arange(len(plan) + 1))
        return group, rows, bounds

    det_group, det_rows, det_bounds = rows_by_chunk(det_key, det_used)
    gt_group, gt_rows, gt_bounds = rows_by_chunk(gt_key, np.ones(len(gt_key), bool))
    gt_rank = _ranks(gt_key, np.argsort(gt_key, kind="stable"))
    chunks = []
    for c, groups in enumerate(plan):
        counts = num_dets[groups]
        d_rows, g_rows = det_rows[det_bounds[c]:det_bounds[c + 1]], gt_rows[gt_bounds[c]:gt_bounds[c + 1]]
        padded_det = np.full((len(groups), counts.max()), -1, np.int64)
        padded_det[position[det_group[d_rows]], det_rank[d_rows]] = d_rows
        padded_gt = np.full((len(groups), num_gts[groups].max()), -1, np.int64)
        padded_gt[position[gt_group[g_rows]], gt_rank[g_rows]] = g_rows
        active = (counts[None, :] > np.arange(counts.max())[:, None]).sum(axis=1)
        chunks.append(_Chunk(padded_det, padded_gt, active))
    return chunks


def _chunk_iou(chunk: _Chunk, det_boxes, gt_boxes, gt_crowd) -> np.ndarray:
    """``[n, Dm, Gm]`` IoU of each group's detections and ground truths; -1 where either is padding."""
    iou = box_iou(det_boxes[chunk.det_rows][:, :, None, :], gt_boxes[chunk.gt_rows][:, None, :, :],
                  gt_crowd[chunk.gt_rows][:, None, :])
    return np.where((chunk.det_rows[:, :, None] >= 0) & (chunk.gt_rows[:, None, :] >= 0), iou, -1.0)


# ---------------------------------------------------------------- the two matching rules

def _last_argmax(scores: np.ndarray):
    """Index of the last maximum along the last axis, and whether that maximum is >= 0."""
    reverse = scores[..., ::-1]
    index = reverse.argmax(axis=-1)
    found = np.take_along_axis(reverse, index[..., None], axis=-1)[..., 0] >= 0
    return scores.shape[-1] - 1 - index, found


def _greedy_chunk(iou: np.ndarray, active: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray,
                  thresholds: np.ndarray) -> np.ndarray:
    """COCO matching in every lane (area range x IoU threshold) of every group at once.

    ``iou [n, Dm, Gm]``, ``gt_ignore [n, A, Gm]``, ``crowd [n, Gm]``; returns ``[n, Dm, A, T]``, the
    position of the matched ground truth or -1. One step per detection rank (greedy is sequential in
    score), each step vectorised over groups and lanes.
    """
    n, num_dets, num_gts = iou.shape
    lanes = (gt_ignore.shape[1], len(thresholds))
    taken = np.zeros((n, *lanes, num_gts), bool)
    match = np.full((n, num_dets, *lanes), -1, np.int64)
    reusable = crowd[:, None, None, :]
    ignore = gt_ignore[:, :, None, :]
    for r in range(num_dets):
        k = int(active[r])
        row = iou[:k, r, None, None, :]
        free = (row >= thresholds[None, None, :, None]) & ~(taken[:k] & ~reusable[:k])
        regular, regular_found = _last_argmax(np.where(free & ~ignore[:k], row, -1.0))
        ignored, ignored_found = _last_argmax(np.where(free & ignore[:k], row, -1.0))
        chosen = np.where(regular_found, regular, np.where(ignored_found, ignored, -1))
        match[:k, r] = chosen
        g, a, t = np.nonzero(chosen >= 0)
        taken[g, a, t, chosen[g, a, t]] = True
    return match


def greedy_match(det_key, det_scores, det_boxes, gt_key, gt_boxes, gt_crowd, gt_ignore, thresholds, *,
                  max_dets: int | None = None):
    """COCO rule over all groups. ``gt_ignore [A, G]``: one ignore flag set per area range.

    Returns ``det_match [A, T, D]`` (matched ground-truth row or -1), the detection ranks in their groups,
    which detections were used (rank < ``max_dets``) and each detection's best IoU in its group.
    """
    thresholds = np.minimum(np.asarray(thresholds, dtype=np.float64), MAX_IOU_THRESHOLD)
    num_areas, num_dets = len(gt_ignore), len(det_key)
    rank = _detection_ranks(det_key, det_scores)
    used = rank < max_dets if max_dets else np.ones(num_dets, bool)
    det_match = np.full((num_areas, len(thresholds), num_dets), -1, np.int64)
    best_iou = np.zeros(num_dets)
    for chunk in _layout(det_key, rank, used, gt_key, num_areas * len(thresholds)):
        iou = _chunk_iou(chunk, det_boxes, gt_boxes, gt_crowd)
        ignore = np.moveaxis(gt_ignore[:, chunk.gt_rows], 0, 1)
        match = _greedy_chunk(iou, chunk.active, ignore, gt_crowd[chunk.gt_rows], thresholds)
        valid = chunk.det_rows >= 0
        group = np.nonzero(valid)[0]
        position = match[valid]
        global_rows = chunk.gt_rows[group[:, None, None], np.maximum(position, 0)]
        det_match[:, :, chunk.det_rows[valid]] = np.where(position >= 0, global_rows, -1).transpose(1, 2, 0)
        best_iou[chunk.det_rows[valid]] = np.maximum(iou.max(axis=2)[valid], 0.0)
    return det_match, rank, used, best_iou


def voc_match(det_key, det_scores, det_boxes, gt_key, gt_boxes, gt_ignore, threshold: float):
    """VOC rule; vectorised because a detection's target (its best-IoU ground truth) never depends on
    earlier matches: the first qualifying detection per target, in score order, is the TP.

    Returns ``det_status [D]``, ``det_match [D]`` (the TP's or ignored detection's ground truth, else -1)
    and each detection's best IoU.
    """
    num_dets = len(det_key)
    status, det_match = np.full(num_dets, FP, np.int8), np.full(num_dets, -1, np.int64)
    best_iou = np.zeros(num_dets)
    rank = _detection_ranks(det_key, det_scores)
    no_crowd = np.zeros(len(gt_key), bool)
    for chunk in _layout(det_key, rank, np.ones(num_dets, bool), gt_key, 1):
        iou = _chunk_iou(chunk, det_boxes, gt_boxes, no_crowd)
        target = iou.argmax(axis=2)  # first maximum, as np.argmax in voc_eval.py
        overlap = np.take_along_axis(iou, target[..., None], axis=2)[..., 0]
        target_row = np.take_along_axis(chunk.gt_rows, target, axis=1)
        valid = chunk.det_rows >= 0
        qualifies = valid & (overlap > threshold)
        ignored = qualifies & gt_ignore[target_row]
        claims = (qualifies & ~ignored)[..., None] & (target[..., None] == np.arange(iou.shape[2]))
        true_positive = (claims & (np.cumsum(claims, axis=1) == 1)).any(axis=2)
        rows = chunk.det_rows[valid]
        status[rows] = np.where(true_positive, TP, np.where(ignored, IGNORED, FP))[valid]
        det_match[rows] = np.where(true_positive | ignored, target_row, -1)[valid]
        best_iou[rows] = np.maximum(overlap[valid], 0.0)
    return status, det_match, best_iou
