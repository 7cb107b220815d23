"""MultiBox loss: smooth-L1 localisation on positives plus cross-entropy with hard negative mining.

The convention, written once::

    total = (cls_sum + loc_weight * loc_sum) / max(num_pos, 1)

* ``cls_sum``: cross-entropy (optionally class-weighted and/or focal) summed over the positive priors
  and the mined negatives of the whole batch.
* ``loc_sum``: smooth-L1 between predicted and target offsets, summed over the 4 coordinates of every
  positive prior.
* ``num_pos``: positive priors in the whole batch. With none, the divisor is 1, so background-only
  batches still train the classifier through their ``n_neg_min`` negatives.

ssd_keras writes this as ``(cls + alpha * loc) / N``; some logo-detection code writes ``loc + alpha * cls``.
The weight here is called ``loc_weight`` and multiplies the localisation term, so neither reading of
"alpha" is possible. ``LossParts.cls`` and ``LossParts.loc`` are the unweighted terms divided by
``max(num_pos, 1)``, so ``total == cls + loc_weight * loc``.

Hard negative mining ranks negatives (label 0) by their classification loss and keeps the hardest:

* ``"per_image"``: ``max(floor(neg_pos_ratio * num_pos_i), n_neg_min)`` per image. A background-only
  image contributes only when ``n_neg_min > 0`` (the ssd_keras fix for images without objects).
* ``"batch"``: ``max(floor(neg_pos_ratio * num_pos), n_neg_min)`` across the whole batch, so an image with
  hard negatives can take more than its share.
* ``"none"``: every negative (plain cross-entropy over all priors; the usual choice with focal loss).

Counts are capped by the negatives available. Class weights multiply each prior's cross-entropy by the
weight of its target class (``weight[0]`` for negatives); they never touch the localisation term.
Focal loss (``focal_gamma``) is the softmax form ``(1 - p_t) ** gamma * CE``; gamma 0 is plain CE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MINING_MODES = ("per_image", "batch", "none")
CLASS_WEIGHT_METHODS = ("none", "inverse_frequency", "inverse_frequency_positives")
SMOOTH_L1_BETA = 1.0  # quadratic below |x| < 1, as in the SSD paper and ssd_keras
_FOCAL_FLOOR = 1e-12  # smallest 1 - p_t used by the focal factor


@dataclass(frozen=True)
class LossParts:
    """``total`` (differentiable) and its parts: ``total == cls + loc_weight * loc``."""

    total: torch.Tensor
    cls: torch.Tensor
    loc: torch.Tensor
    num_pos: int


def class_weights_from_counts(counts: Sequence[float], method: str) -> torch.Tensor:
    """Per-class cross-entropy weights ``[C + 1]`` from per-class counts ``[C + 1]``.

    ``counts[0]`` is the background count in the same unit as the others (for example background priors
    or negative samples); ``counts[1:]`` are the object counts of classes 1..C. With
    ``total = sum(counts)``:

    * ``"none"``: every weight 1.
    * ``"inverse_frequency"``: class c (background included) weighted by ``total - n_c``, normalised so
      the mean over the foreground classes 1..C is 1. Rare classes weigh more; the background weight
      follows the same rule, so a large background count lowers the weight of every negative.
    * ``"inverse_frequency_positives"``: the same foreground weights, background weight 1: only the
      positives are reweighted, negatives keep plain cross-entropy.
    """
    if method not in CLASS_WEIGHT_METHODS:
        raise ValueError(f"class weights: unknown method {method!r}; choose one of {CLASS_WEIGHT_METHODS}")
    counts_tensor = torch.as_tensor(counts, dtype=torch.float64)
    if counts_tensor.ndim != 1 or counts_tensor.numel() < 2:
        raise ValueError("class weights: counts must list background then at least one class")
    if not torch.isfinite(counts_tensor).all() or (counts_tensor < 0).any():
        raise ValueError(f"class weights: counts must be finite and >= 0, got {counts_tensor.tolist()}")
    if method == "none":
        return torch.ones(counts_tensor.numel(), dtype=torch.float32)
    unnormalised = counts_tensor.sum() - counts_tensor
    foreground_mean = unnormalised[1:].mean()
    if foreground_mean <= 0:
        raise ValueError(f"class weights: {method} is undefined for counts {counts_tensor.tolist()} "
                         "(one class holds every count)")
    weights = unnormalised / foreground_mean
    if method == "inverse_frequency_positives":
        weights[0] = 1.0
    return weights.to(torch.float32)


def hard_negative_mask(negative_scores: torch.Tensor, positives: torch.Tensor, *, neg_pos_ratio: float,
                       n_neg_min: int, mining: str) -> torch.Tensor:
    """Boolean ``[B, N]`` mask of the negatives that enter the loss (see the module doc).

    ``negative_scores`` ranks the priors (higher is harder); ``positives`` is ``[B, N]`` bool.
    """
    if mining not in MINING_MODES:
        raise ValueError(f"loss: unknown mining {mining!r}; choose one of {MINING_MODES}")
    negatives = ~positives
    if mining == "none":
        return negatives
    if mining == "batch":
        flat_mask = _hardest(negative_scores.reshape(1, -1), negatives.reshape(1, -1),
                             positives.sum().reshape(1), neg_pos_ratio, n_neg_min)
        return flat_mask.reshape(negatives.shape)
    return _hardest(negative_scores, negatives, positives.sum(dim=1), neg_pos_ratio, n_neg_min)


def _hardest(scores: torch.Tensor, negatives: torch.Tensor, num_pos: torch.Tensor, neg_pos_ratio: float,
             n_neg_min: int) -> torch.Tensor:
    """Per row, the ``max(floor(ratio * num_pos), n_neg_min)`` highest-scoring negatives."""
    wanted = torch.clamp((num_pos.double() * neg_pos_ratio).floor().long(), min=n_neg_min)
    num_neg = torch.minimum(wanted, negatives.sum(dim=1))
    ranked_scores = scores.detach().masked_fill(~negatives, float("-inf"))
    order = ranked_scores.argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1)
    return rank < num_neg.unsqueeze(1)


class MultiBoxLoss(nn.Module):
    """SSD MultiBox loss; ``forward(cls_logits, loc, label_targets, loc_targets) -> LossParts``."""

    def __init__(self, neg_pos_ratio: float = 3.0, n_neg_min: int = 0, mining: str = "per_image",
                 loc_weight: float = 1.0, class_weights: torch.Tensor | None = None,
                 focal_gamma: float | None = None):
        super().__init__()
        if mining not in MINING_MODES:
            raise ValueError(f"loss: unknown mining {mining!r}; choose one of {MINING_MODES}")
        if neg_pos_ratio < 0 or n_neg_min < 0 or int(n_neg_min) != n_neg_min:
            raise ValueError(f"loss: neg_pos_ratio must be >= 0 and n_neg_min an integer >= 0, got "
                             f"{neg_pos_ratio} and {n_neg_min}")
        if not loc_weight >= 0:
            raise ValueError(f"loss: loc_weight must be >= 0, got {loc_weight}")
        if focal_gamma is not None and not focal_gamma >= 0:
            raise ValueError(f"loss: focal_gamma must be >= 0 or None, got {focal_gamma}")
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.n_neg_min = int(n_neg_min)
        self.mining = mining
        self.loc_weight = float(loc_weight)
        self.focal_gamma = focal_gamma
        self.register_buffer("class_weights", _checked_class_weights(class_weights))

    def per_prior_cls_loss(self, cls_logits: torch.Tensor, label_targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy ``[B, N]`` of every prior, with class weights and the focal factor applied."""
        log_probs = F.log_softmax(cls_logits.float(), dim=-1)
        target_log_prob = log_probs.gather(-1, label_targets.unsqueeze(-1)).squeeze(-1)
        loss = -target_log_prob
        if self.focal_gamma is not None:
            # 1 - p_t via expm1 (exact for confident priors); the floor keeps the gradient of a
            # fractional power finite when p_t rounds to 1
            one_minus_p = (-torch.expm1(target_log_prob)).clamp(min=_FOCAL_FLOOR)
            loss = loss * one_minus_p ** self.focal_gamma
        if self.class_weights is not None:
            if self.class_weights.numel() != cls_logits.shape[-1]:
                raise ValueError(f"loss: {self.class_weights.numel()} class weights for "
                                 f"{cls_logits.shape[-1]} classes (background included)")
            loss = loss * self.class_weights[label_targets]
        return loss

    def forward(self, cls_logits: torch.Tensor, loc: torch.Tensor, label_targets: torch.Tensor,
                loc_targets: torch.Tensor) -> LossParts:
        _check_shapes(cls_logits, loc, label_targets, loc_targets)
        positives = label_targets > 0
        cls_loss = self.per_prior_cls_loss(cls_logits, label_targets)
        mined_negatives = hard_negative_mask(cls_loss, positives, neg_pos_ratio=self.neg_pos_ratio,
                                             n_neg_min=self.n_neg_min, mining=self.mining)
        cls_sum = cls_loss[positives | mined_negatives].sum()
        loc_sum = F.smooth_l1_loss(loc[positives].float(), loc_targets[positives].float(),
                                   reduction="sum", beta=SMOOTH_L1_BETA)
        num_pos = int(positives.sum())
        divisor = max(num_pos, 1)
        parts = LossParts(total=(cls_sum + self.loc_weight * loc_sum) / divisor, cls=cls_sum / divisor,
                          loc=loc_sum / divisor, num_pos=num_pos)
        _raise_if_not_finite(parts, cls_logits=cls_logits, loc=loc, loc_targets=loc_targets)
        return parts


def _checked_class_weights(class_weights: torch.Tensor | None) -> torch.Tensor | None:
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.ndim != 1 or weights.numel() < 2:
        raise ValueError("loss: class_weights must be a 1-D tensor [C + 1], background first")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"loss: class_weights must be finite and >= 0, got {weights.tolist()}")
    return weights


def _check_shapes(cls_logits: torch.Tensor, loc: torch.Tensor, label_targets: torch.Tensor,
                  loc_targets: torch.Tensor) -> None:
    batch_priors = tuple(label_targets.shape)
    if len(batch_priors) != 2 or tuple(cls_logits.shape[:2]) != batch_priors or cls_logits.ndim != 3 \
            or tuple(loc.shape) != (*batch_priors, 4) or tuple(loc_targets.shape) != (*batch_priors, 4):
        raise ValueError("loss: expected cls_logits [B, N, C+1], loc [B, N, 4], label_targets [B, N], "
                         f"loc_targets [B, N, 4]; got {list(cls_logits.shape)}, {list(loc.shape)}, "
                         f"{list(label_targets.shape)}, {list(loc_targets.shape)}")


def _raise_if_not_finite(parts: LossParts, **inputs: torch.Tensor) -> None:
    """Raise FloatingPointError when the loss or any input is NaN/inf.

    Inputs are checked too because mining or the positives-only loc term could leave a bad prior out of
    the total and hide it.
    """
    inputs_finite = torch.stack([torch.isfinite(t.detach()).all() for t in inputs.values()])
    if bool(torch.isfinite(parts.total.detach()) & inputs_finite.all()):
        return
    bad_inputs = [name for name, ok in zip(inputs, inputs_finite.tolist()) if not ok]
    total, cls, loc = (float(t.detach()) for t in (parts.total, parts.cls, parts.loc))
    raise FloatingPointError(f"loss is not finite: total={total} cls={cls} "
                             f"loc={loc} num_pos={parts.num_pos}; non-finite inputs: "
                             f"{', '.join(bad_inputs) or 'none'}")
