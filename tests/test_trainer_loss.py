"""MultiBox loss on constructed priors whose cross-entropies are known in closed form.

With two classes and logits ``[0, x]`` a background prior costs ``softplus(x) = log(1 + e^x)`` and an
object prior ``softplus(-x)``; with all-zero logits over K classes every prior costs ``log(K)``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.box_coder import match_batch
from trainer.loss import MultiBoxLoss, class_weights_from_counts, hard_negative_mask
from trainer.priors import AnchorSpec, DefaultBoxes


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def two_class_logits(object_scores) -> torch.Tensor:
    """[B, N, 2] logits ``[0, x]`` from a nested list of x."""
    scores = torch.tensor(object_scores, dtype=torch.float32)
    return torch.stack([torch.zeros_like(scores), scores], dim=-1)


def compute(loss: MultiBoxLoss, logits, labels, loc=None, loc_targets=None):
    batch, priors = labels.shape
    loc = torch.zeros(batch, priors, 4) if loc is None else loc
    loc_targets = torch.zeros(batch, priors, 4) if loc_targets is None else loc_targets
    return loss(logits, loc, labels, loc_targets)


def test_background_only_image_has_zero_loc_loss_and_mined_negatives_with_n_neg_min():
    logits = two_class_logits([[2.0, 1.0, 0.0, -1.0]])
    labels = torch.zeros(1, 4, dtype=torch.long)
    parts = compute(MultiBoxLoss(n_neg_min=2, mining="per_image"), logits, labels)
    assert parts.num_pos == 0
    assert float(parts.loc) == 0.0
    # divisor max(0, 1) = 1; the two hardest negatives are those scored 2 and 1
    assert float(parts.cls) == pytest.approx(softplus(2.0) + softplus(1.0), rel=1e-6)
    assert float(parts.total) == pytest.approx(float(parts.cls))


def test_background_only_batch_mined_across_the_batch_with_n_neg_min():
    logits = two_class_logits([[2.0, 1.0], [3.0, -1.0]])
    parts = compute(MultiBoxLoss(n_neg_min=2, mining="batch"), logits, torch.zeros(2, 2, dtype=torch.long))
    assert float(parts.total) == pytest.approx(softplus(3.0) + softplus(2.0), rel=1e-6)


def test_background_only_image_contributes_nothing_per_image_with_n_neg_min_zero():
    object_scores = [[-3.0, 2.0, 0.5, 0.0], [3.0, 2.5, 1.0, -1.0]]  # image 1 has no objects
    labels = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]])
    loss = MultiBoxLoss(neg_pos_ratio=1.0, n_neg_min=0, mining="per_image")
    both = compute(loss, two_class_logits(object_scores), labels)
    first_only = compute(loss, two_class_logits(object_scores[:1]), labels[:1])
    background_only = compute(loss, two_class_logits(object_scores[1:]), labels[1:])
    assert float(both.total) == float(first_only.total)
    assert float(both.total) == pytest.approx(softplus(3.0) + softplus(2.0), rel=1e-6)
    assert float(background_only.total) == 0.0


@pytest.mark.parametrize("ratio, n_neg_min, expected", [
    (3.0, 0, [3, 4, 5, 6, 7, 8]),  # 3 * 2 positives: the six hardest, .7 .6 .5 .4 .3 .2
    (1.0, 0, [4, 6]),
    (1.75, 0, [4, 6, 8]),  # floor(3.5) = 3
    (1.0, 5, [4, 5, 6, 7, 8]),  # n_neg_min lifts 2 to 5
    (10.0, 0, [1, 3, 4, 5, 6, 7, 8, 9]),  # capped by the 8 negatives available
    (0.0, 0, []),
])
def test_neg_pos_ratio_bounds_the_number_of_negatives(ratio, n_neg_min, expected):
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.05]])
    positives = torch.zeros(1, 10, dtype=torch.bool)
    positives[0, [0, 2]] = True
    mask = hard_negative_mask(scores, positives, neg_pos_ratio=ratio, n_neg_min=n_neg_min,
                              mining="per_image")
    assert mask[0].nonzero().flatten().tolist() == expected


def test_loss_sums_exactly_the_mined_negatives():
    object_scores = [[-1.0, 0.5, 2.0, -0.5, 1.0, 0.0]]
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]])
    parts = compute(MultiBoxLoss(neg_pos_ratio=2.0), two_class_logits(object_scores), labels)
    # positive softplus(1); the two hardest negatives have scores 2 and 1
    assert float(parts.cls) == pytest.approx(softplus(1.0) + softplus(2.0) + softplus(1.0), rel=1e-6)


def test_batch_and_per_image_mining_differ():
    # both images have one positive; image 0's negatives are easy, image 1's are hard
    object_scores = [[-2.0, -1.0, -2.0, -3.0], [-2.0, 3.0, 2.0, 1.0]]
    labels = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]])
    logits = two_class_logits(object_scores)
    positives = labels > 0
    per_image = hard_negative_mask(logits[..., 1], positives, neg_pos_ratio=1.0, n_neg_min=0,
                                   mining="per_image")
    batch = hard_negative_mask(logits[..., 1], positives, neg_pos_ratio=1.0, n_neg_min=0, mining="batch")
    assert per_image.nonzero().tolist() == [[0, 1], [1, 1]]
    assert batch.nonzero().tolist() == [[1, 1], [1, 2]]
    positive_sum = 2 * softplus(2.0)
    per_image_loss = compute(MultiBoxLoss(neg_pos_ratio=1.0, mining="per_image"), logits, labels)
    batch_loss = compute(MultiBoxLoss(neg_pos_ratio=1.0, mining="batch"), logits, labels)
    assert float(per_image_loss.cls) == pytest.approx((positive_sum + softplus(-1.0) + softplus(3.0)) / 2)
    assert float(batch_loss.cls) == pytest.approx((positive_sum + softplus(3.0) + softplus(2.0)) / 2)


def test_mining_none_is_plain_cross_entropy_over_all_priors():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 3, generator=generator)
    labels = torch.tensor([[0, 2, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]])
    parts = compute(MultiBoxLoss(mining="none"), logits, labels)
    expected = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), reduction="sum") / 2
    torch.testing.assert_close(parts.cls, expected)
    assert parts.num_pos == 2


def test_loc_weight_scales_only_the_loc_term():
    logits = two_class_logits([[0.0, 1.0, -1.0]])
    labels = torch.tensor([[1, 0, 0]])
    loc = torch.tensor([[[0.5, -2.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]]])
    plain = compute(MultiBoxLoss(loc_weight=1.0), logits, labels, loc=loc)
    heavy = compute(MultiBoxLoss(loc_weight=3.0), logits, labels, loc=loc)
    # smooth-L1 on the positive only: 0.5 * 0.5^2 + (2 - 0.5) = 1.625; negatives' loc is ignored
    assert float(plain.loc) == pytest.approx(1.625)
    assert float(heavy.loc) == pytest.approx(1.625)
    assert float(heavy.cls) == float(plain.cls)
    assert float(heavy.total - plain.total) == pytest.approx(2 * 1.625)
    assert float(heavy.total) == pytest.approx(float(heavy.cls) + 3.0 * 1.625)


def test_class_weights_multiply_each_prior_by_its_target_weight():
    logits = torch.zeros(1, 3, 3)  # every prior costs log 3
    labels = torch.tensor([[1, 0, 2]])
    weights = torch.tensor([0.5, 2.0, 1.0])
    parts = compute(MultiBoxLoss(mining="none", class_weights=weights), logits, labels)
    assert float(parts.cls) == pytest.approx((2.0 + 0.5 + 1.0) * math.log(3) / 2)
    unweighted = compute(MultiBoxLoss(mining="none"), logits, labels)
    assert float(unweighted.cls) == pytest.approx(3 * math.log(3) / 2)


def test_class_weights_from_counts_by_hand():
    counts = [10, 30, 60]  # total 100: total - n_c = 90, 70, 40; mean over classes 1..2 is 55
    torch.testing.assert_close(class_weights_from_counts(counts, "none"), torch.ones(3))
    torch.testing.assert_close(class_weights_from_counts(counts, "inverse_frequency"),
                               torch.tensor([90 / 55, 70 / 55, 40 / 55]))
    torch.testing.assert_close(class_weights_from_counts(counts, "inverse_frequency_positives"),
                               torch.tensor([1.0, 70 / 55, 40 / 55]))
    with pytest.raises(ValueError, match="unknown method"):
        class_weights_from_counts(counts, "inverse")
    with pytest.raises(ValueError, match="one class holds every count"):
        class_weights_from_counts([0, 5], "inverse_frequency")


def test_focal_gamma_zero_is_plain_cross_entropy_and_gamma_two_by_hand():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 4, generator=generator)
    labels = torch.randint(0, 4, (2, 8), generator=generator)
    plain = compute(MultiBoxLoss(n_neg_min=1), logits, labels)
    focal_zero = compute(MultiBoxLoss(n_neg_min=1, focal_gamma=0.0), logits, labels)
    torch.testing.assert_close(focal_zero.total, plain.total)
    # p_t = 0.5 for both priors: (1 - 0.5)^2 * log 2 each, one positive
    focal_two = compute(MultiBoxLoss(mining="none", focal_gamma=2.0), torch.zeros(1, 2, 2),
                        torch.tensor([[1, 0]]))
    assert float(focal_two.total) == pytest.approx(2 * 0.25 * math.log(2))


@pytest.mark.parametrize("where", ["cls_logits", "loc"])
def test_nan_input_raises_floating_point_error(where):
    logits = two_class_logits([[0.0, 1.0, -4.0, -5.0]])
    loc = torch.zeros(1, 4, 4)
    # a negative prior that mining would leave out, so only the input check can notice it
    (logits if where == "cls_logits" else loc)[0, 3, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=f"non-finite inputs: {where}"):
        compute(MultiBoxLoss(neg_pos_ratio=1.0), logits, torch.tensor([[1, 0, 0, 0]]), loc=loc)


def test_infinite_total_raises_with_the_parts_in_the_message():
    logits = two_class_logits([[0.0, 1.0]])
    loc_targets = torch.zeros(1, 2, 4)
    loc_targets[0, 0, 2] = float("inf")
    with pytest.raises(FloatingPointError, match=r"total=inf .* num_pos=1"):
        compute(MultiBoxLoss(), logits, torch.tensor([[1, 0]]), loc_targets=loc_targets)


def test_gradients_reach_exactly_the_positives_and_mined_negatives():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 10, 3, generator=generator).requires_grad_()
    loc = torch.randn(2, 10, 4, generator=generator).requires_grad_()
    labels = torch.zeros(2, 10, dtype=torch.long)
    labels[0, 0], labels[1, 5] = 1, 2
    MultiBoxLoss(neg_pos_ratio=2.0)(logits, loc, labels, torch.zeros(2, 10, 4)).total.backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(loc.grad).all()
    assert (logits.grad.abs().sum(-1) > 0).sum(dim=1).tolist() == [3, 3]  # 1 positive + 2 negatives
    assert (loc.grad.abs().sum(-1) > 0).nonzero().tolist() == [[0, 0], [1, 5]]


def test_fractional_focal_gamma_keeps_gradients_finite_on_saturated_priors():
    logits = torch.tensor([[[0.0, 200.0], [200.0, 0.0], [0.0, 3.0]]], requires_grad=True)  # p_t rounds to 1
    parts = MultiBoxLoss(mining="none", focal_gamma=0.5)(logits, torch.zeros(1, 3, 4),
                                                         torch.tensor([[1, 0, 1]]), torch.zeros(1, 3, 4))
    parts.total.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2].abs().sum() > 0


def test_matched_targets_feed_the_loss_end_to_end():
    priors = DefaultBoxes(spec=AnchorSpec(scales=(0.3, 0.6), aspect_ratios=((1.0, 2.0, 0.5),)),
                          image_size=(32, 32), feature_map_sizes=[(4, 4)])
    gt = [torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.5, 0.2, 0.9, 0.5]]), torch.zeros(0, 4)]
    labels = [torch.tensor([1, 2]), torch.zeros(0, dtype=torch.long)]
    loc_targets, label_targets = match_batch(gt, labels, priors.xyxy(), priors.cxcywh)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, len(priors), 3, generator=generator)
    parts = MultiBoxLoss(n_neg_min=3)(logits, torch.zeros(2, len(priors), 4), label_targets, loc_targets)
    assert parts.num_pos == int((label_targets > 0).sum()) >= 2
    assert float(parts.loc) > 0 and float(parts.cls) > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(mining="hard"), "unknown mining"),
    (dict(neg_pos_ratio=-1.0), "neg_pos_ratio"),
    (dict(n_neg_min=1.5), "n_neg_min"),
    (dict(loc_weight=-1.0), "loc_weight"),
    (dict(focal_gamma=-2.0), "focal_gamma"),
    (dict(class_weights=torch.tensor([1.0, float("nan")])), "finite"),
])
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiBoxLoss(**kwargs)


def test_forward_rejects_mismatched_shapes_and_class_weight_count():
    labels = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="expected cls_logits"):
        MultiBoxLoss()(torch.zeros(1, 3, 2), torch.zeros(1, 4, 4), labels, torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="3 class weights for 2 classes"):
        compute(MultiBoxLoss(class_weights=torch.ones(3)), torch.zeros(1, 3, 2), labels)
