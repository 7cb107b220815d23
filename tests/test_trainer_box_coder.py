"""Box coding and matching on three or four hand-placed default boxes."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_convert

from trainer.box_coder import decode, encode, forced_prior_per_gt, match, match_batch
from trainer.priors import AnchorSpec, DefaultBoxes

# relative xyxy; areas 0.16, 0.25, 0.16, 0.16
PRIORS_XYXY = torch.tensor([[0.0, 0.0, 0.4, 0.4],
                            [0.5, 0.5, 1.0, 1.0],
                            [0.6, 0.6, 1.0, 1.0],
                            [0.0, 0.6, 0.4, 1.0]])
PRIORS_CXCYWH = box_convert(PRIORS_XYXY, "xyxy", "cxcywh")


def run_match(gt_xyxy, labels, priors_xyxy=PRIORS_XYXY, threshold=0.5):
    priors_cxcywh = box_convert(priors_xyxy, "xyxy", "cxcywh")
    return match(torch.tensor(gt_xyxy), torch.tensor(labels), priors_xyxy, priors_cxcywh,
                 iou_threshold=threshold)


def test_encode_by_hand():
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    gt = torch.tensor([[0.52, 0.5, 0.4, 0.1]])
    # (0.02 / (0.1 * 0.2), 0, log(2) / 0.2, log(0.5) / 0.2)
    expected = torch.tensor([[1.0, 0.0, math.log(2) / 0.2, math.log(0.5) / 0.2]])
    torch.testing.assert_close(encode(gt, prior, (0.1, 0.2)), expected)


def test_encode_decode_round_trip_broadcasts_over_batch():
    generator = torch.Generator().manual_seed(0)
    priors = torch.rand(50, 4, generator=generator) * 0.5 + 0.25
    gt = torch.rand(3, 50, 4, generator=generator) * 0.5 + 0.25
    offsets = encode(gt, priors, (0.1, 0.2))
    assert offsets.shape == (3, 50, 4)
    torch.testing.assert_close(decode(offsets, priors, (0.1, 0.2)), gt)
    torch.testing.assert_close(decode(torch.zeros(50, 4), priors), priors)


def test_ground_truth_below_threshold_still_gets_its_best_prior():
    # [0, 0, 0.2, 0.2] has IoU 0.04 / 0.16 = 0.25 with prior 0 and 0 with the others
    loc, labels = run_match([[0.0, 0.0, 0.2, 0.2]], [3])
    assert labels.tolist() == [3, 0, 0, 0]
    expected = encode(torch.tensor([[0.1, 0.1, 0.2, 0.2]]), PRIORS_CXCYWH[:1])
    torch.testing.assert_close(loc[0:1], expected)
    assert loc[1:].abs().sum() == 0


def test_threshold_matches_every_prior_above_it():
    # the gt equals prior 1 (IoU 1, forced); prior 2 lies inside it: IoU 0.16 / 0.25 = 0.64 >= 0.5
    loc, labels = run_match([[0.5, 0.5, 1.0, 1.0]], [1])
    assert labels.tolist() == [0, 1, 1, 0]
    torch.testing.assert_close(loc[1], torch.zeros(4))
    # prior 2 (0.8, 0.8, 0.4, 0.4) -> gt (0.75, 0.75, 0.5, 0.5): -0.05 / 0.04, log(1.25) / 0.2
    torch.testing.assert_close(loc[2], torch.tensor([-1.25, -1.25, math.log(1.25) / 0.2,
                                                     math.log(1.25) / 0.2]))
    _, strict_labels = run_match([[0.5, 0.5, 1.0, 1.0]], [1], threshold=0.65)
    assert strict_labels.tolist() == [0, 1, 0, 0]


def test_conflicting_best_prior_goes_to_higher_iou_and_the_other_takes_its_next_best():
    # gt A [0.5, 0.5, 0.9, 0.9]: IoU 0.64 with prior 1, 0.09 / 0.23 = 0.391 with prior 2
    # gt B [0.55, 0.55, 1, 1]:   IoU 0.2025 / 0.25 = 0.81 with prior 1, 0.16 / 0.2025 = 0.790 with prior 2
    # both prefer prior 1; B (0.81) keeps it, A is forced onto prior 2 although B overlaps it more
    gt = [[0.5, 0.5, 0.9, 0.9], [0.55, 0.55, 1.0, 1.0]]
    _, labels = run_match(gt, [1, 2])
    assert labels.tolist() == [0, 2, 1, 0]


def test_prior_above_threshold_for_two_ground_truths_takes_the_higher_iou():
    priors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4], [0.04, 0.0, 0.44, 0.4]])
    # prior 2 vs gt 1 (= prior 0): 0.144 / 0.176 = 0.818; vs gt 2 (= prior 1): 0.136 / 0.184 = 0.739
    _, labels = run_match([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4]], [1, 2], priors_xyxy=priors)
    assert labels.tolist() == [1, 2, 1]


def test_greedy_forced_matching_gives_each_ground_truth_a_distinct_prior():
    iou = torch.tensor([[0.9, 0.8, 0.1],
                        [0.95, 0.7, 0.2],
                        [0.5, 0.6, 0.3]])
    # pairs in IoU order: (gt 1, prior 0) 0.95, then (gt 0, prior 1) 0.8, then (gt 2, prior 2) 0.3
    assert forced_prior_per_gt(iou).tolist() == [1, 0, 2]


def test_every_ground_truth_is_matched_on_real_default_boxes():
    generator = torch.Generator().manual_seed(1)
    priors = DefaultBoxes(spec=AnchorSpec(scales=(0.2, 0.5, 0.8), aspect_ratios=((1.0, 2.0), (1.0,))),
                          image_size=(64, 64), feature_map_sizes=[(4, 4), (2, 2)])
    corners = torch.rand(12, 2, 2, generator=generator)
    gt = torch.cat([corners.min(dim=1).values, corners.max(dim=1).values + 0.01], dim=1).clamp(max=1.0)
    labels = torch.arange(1, 13)
    loc, label_targets = match(gt, labels, priors.xyxy(), priors.cxcywh)
    assert set(label_targets.unique().tolist()) - {0} == set(range(1, 13))
    assert torch.isfinite(loc).all()


def test_zero_ground_truth_gives_all_background():
    loc, labels = match(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), PRIORS_XYXY, PRIORS_CXCYWH)
    assert labels.tolist() == [0, 0, 0, 0]
    assert labels.dtype == torch.long
    assert loc.shape == (4, 4) and loc.abs().sum() == 0


def test_match_batch_stacks_images_including_empty_ones():
    gt = [torch.tensor([[0.5, 0.5, 1.0, 1.0]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.long)]
    loc, label_targets = match_batch(gt, labels, PRIORS_XYXY, PRIORS_CXCYWH)
    assert loc.shape == (2, 4, 4) and label_targets.shape == (2, 4)
    assert label_targets.tolist() == [[0, 2, 2, 0], [0, 0, 0, 0]]
    single_loc, _ = match(gt[0], labels[0], PRIORS_XYXY, PRIORS_CXCYWH)
    torch.testing.assert_close(loc[0], single_loc)


@pytest.mark.parametrize("gt, labels, message", [
    ([[0.2, 0.2, 0.2, 0.5]], [1], "no area"),
    ([[0.0, 0.0, 0.2, 0.2]], [0], "1..C"),
    ([[0.0, 0.0, 0.2, 0.2]] * 5, [1] * 5, "5 ground truths but only 4"),
])
def test_match_rejects_bad_ground_truth(gt, labels, message):
    with pytest.raises(ValueError, match=message):
        run_match(gt, labels)
