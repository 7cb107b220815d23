"""SSD box coding: offsets between ground truth and default boxes, and ground-truth matching.

All boxes here are relative to the input image (``[0, 1]``); ``xyxy`` is corners, ``cxcywh`` is centre
and size. Offsets follow the SSD paper with variances ``(v0, v1)``::

    t_xy = (g_xy - p_xy) / (v0 * p_wh)        t_wh = log(g_wh / p_wh) / v1

Matching (docs/trainer.md): every ground truth first gets its best prior, forced even below the
threshold; then every other prior whose best IoU is >= ``iou_threshold`` takes its best ground truth;
the rest are background (label 0, zero offsets). When two ground truths share a best prior, the one with
the higher IoU keeps it and the other takes its best prior still free (greedy bipartite matching, as
ssd_keras does), so no ground truth is left without a positive. A forced prior keeps its ground truth
even when another one overlaps it more.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import box_convert, box_iou

DEFAULT_VARIANCES = (0.1, 0.2)  # SSD's centre / size variances (original Caffe SSD, ssd.pytorch)
_REMOVED = -1.0  # below any IoU, marks rows / columns taken by the greedy forced matching


def encode(gt_cxcywh: torch.Tensor, priors_cxcywh: torch.Tensor,
           variances: Sequence[float] = DEFAULT_VARIANCES) -> torch.Tensor:
    """Offsets ``[..., 4]`` that move each prior onto its ground truth (shapes broadcast)."""
    centre_variance, size_variance = variances
    prior_xy, prior_wh = priors_cxcywh[..., :2], priors_cxcywh[..., 2:]
    offset_xy = (gt_cxcywh[..., :2] - prior_xy) / (centre_variance * prior_wh)
    offset_wh = torch.log(gt_cxcywh[..., 2:] / prior_wh) / size_variance
    return torch.cat([offset_xy, offset_wh], dim=-1)


def decode(loc: torch.Tensor, priors_cxcywh: torch.Tensor,
           variances: Sequence[float] = DEFAULT_VARIANCES) -> torch.Tensor:
    """Inverse of :func:`encode`: predicted offsets ``[..., N, 4]`` to boxes ``cxcywh``."""
    centre_variance, size_variance = variances
    prior_xy, prior_wh = priors_cxcywh[..., :2], priors_cxcywh[..., 2:]
    box_xy = prior_xy + loc[..., :2] * centre_variance * prior_wh
    box_wh = prior_wh * torch.exp(loc[..., 2:] * size_variance)
    return torch.cat([box_xy, box_wh], dim=-1)


def forced_prior_per_gt(iou: torch.Tensor) -> torch.Tensor:
    """For an IoU matrix ``[G, N]``, a distinct prior index per ground truth ``[G]``.

    Each ground truth takes its best prior; only when best priors collide is the greedy assignment run
    (highest remaining IoU pair first), so the common case stays one vectorised ``argmax``.
    """
    best_prior = iou.argmax(dim=1)
    if best_prior.unique().numel() == best_prior.numel():
        return best_prior
    if iou.shape[0] > iou.shape[1]:
        raise ValueError(f"match: {iou.shape[0]} ground truths but only {iou.shape[1]} default boxes; "
                         "each ground truth needs a default box of its own")
    remaining = iou.clone()
    num_priors = iou.shape[1]
    for _ in range(iou.shape[0]):
        flat = int(remaining.argmax())
        gt_index, prior_index = divmod(flat, num_priors)
        best_prior[gt_index] = prior_index
        remaining[gt_index, :] = _REMOVED
        remaining[:, prior_index] = _REMOVED
    return best_prior


def _check_ground_truth(gt_xyxy_rel: torch.Tensor, gt_labels: torch.Tensor) -> None:
    if gt_xyxy_rel.ndim != 2 or gt_xyxy_rel.shape[1] != 4:
        raise ValueError(f"match: ground-truth boxes must be [G, 4], got {list(gt_xyxy_rel.shape)}")
    if gt_labels.shape != gt_xyxy_rel.shape[:1]:
        raise ValueError(f"match: {gt_xyxy_rel.shape[0]} boxes but labels of shape {list(gt_labels.shape)}")
    degenerate = (gt_xyxy_rel[:, 2:] <= gt_xyxy_rel[:, :2]).any(dim=1)
    if degenerate.any():
        index = int(degenerate.nonzero()[0])
        raise ValueError(f"match: ground-truth box {index} {gt_xyxy_rel[index].tolist()} has no area "
                         "(x1 <= x0 or y1 <= y0); drop empty boxes before matching")
    if (gt_labels <= 0).any():
        raise ValueError("match: ground-truth labels must be 1..C (0 is background)")


def match(gt_xyxy_rel: torch.Tensor, gt_labels: torch.Tensor, priors_xyxy_rel: torch.Tensor,
          priors_cxcywh: torch.Tensor, iou_threshold: float = 0.5,
          variances: Sequence[float] = DEFAULT_VARIANCES) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets for one image: ``(loc_targets [N, 4], label_targets [N] long)``; see the module doc."""
    num_priors = priors_xyxy_rel.shape[0]
    device = priors_xyxy_rel.device
    loc_targets = torch.zeros(num_priors, 4, dtype=priors_cxcywh.dtype, device=device)
    label_targets = torch.zeros(num_priors, dtype=torch.long, device=device)
    if gt_xyxy_rel.numel() == 0:
        return loc_targets, label_targets
    _check_ground_truth(gt_xyxy_rel, gt_labels)

    iou = box_iou(gt_xyxy_rel, priors_xyxy_rel)  # [G, N]
    best_iou_per_prior, best_gt_per_prior = iou.max(dim=0)
    forced_priors = forced_prior_per_gt(iou)
    best_gt_per_prior[forced_priors] = torch.arange(len(forced_priors), device=device)
    positive = best_iou_per_prior >= iou_threshold
    positive[forced_priors] = True

    matched_gt = box_convert(gt_xyxy_rel[best_gt_per_prior[positive]], "xyxy", "cxcywh")
    loc_targets[positive] = encode(matched_gt, priors_cxcywh[positive], variances).to(loc_targets.dtype)
    label_targets[positive] = gt_labels[best_gt_per_prior[positive]].long()
    return loc_targets, label_targets


def match_batch(gt_xyxy_rel: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                priors_xyxy_rel: torch.Tensor, priors_cxcywh: torch.Tensor, iou_threshold: float = 0.5,
                variances: Sequence[float] = DEFAULT_VARIANCES) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`match` for each image's boxes and labels -> ``(loc [B, N, 4], labels [B, N])``."""
    if len(gt_xyxy_rel) != len(gt_labels):
        raise ValueError(f"match_batch: {len(gt_xyxy_rel)} box tensors but {len(gt_labels)} label tensors")
    per_image = [match(boxes, labels, priors_xyxy_rel, priors_cxcywh, iou_threshold, variances)
                 for boxes, labels in zip(gt_xyxy_rel, gt_labels)]
    if not per_image:
        raise ValueError("match_batch: empty batch")
    loc_targets, label_targets = zip(*per_image)
    return torch.stack(loc_targets), torch.stack(label_targets)
