"""Default boxes on tiny grids, checked against boxes worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.priors import AnchorSpec, DefaultBoxes

SSD300_FEATURE_MAPS = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def boxes(spec: AnchorSpec, image_size, feature_map_sizes, **kwargs) -> DefaultBoxes:
    return DefaultBoxes(spec=spec, image_size=image_size, feature_map_sizes=feature_map_sizes, **kwargs)


def test_two_by_two_map_square_boxes_at_cell_centres():
    spec = AnchorSpec(scales=(0.5, 1.0), aspect_ratios=((1.0,),), extra_square=False)
    priors = boxes(spec, (100, 100), [(2, 2)])
    # row i, then column j: centres at (j + 0.5) / 2 and (i + 0.5) / 2
    expected = torch.tensor([[0.25, 0.25, 0.5, 0.5],
                             [0.75, 0.25, 0.5, 0.5],
                             [0.25, 0.75, 0.5, 0.5],
                             [0.75, 0.75, 0.5, 0.5]])
    torch.testing.assert_close(priors.cxcywh, expected)
    assert len(priors) == 4
    assert priors.boxes_per_location() == [1]
    torch.testing.assert_close(priors.xyxy()[3], torch.tensor([0.5, 0.5, 1.0, 1.0]))


def test_ratio_boxes_then_extra_square_with_geometric_mean_scale():
    spec = AnchorSpec(scales=(0.2, 0.8), aspect_ratios=((1.0, 2.0),), extra_square=True)
    priors = boxes(spec, (64, 64), [(1, 1)])
    root2 = math.sqrt(2.0)
    expected = torch.tensor([[0.5, 0.5, 0.2, 0.2],
                             [0.5, 0.5, 0.2 * root2, 0.2 / root2],
                             [0.5, 0.5, 0.4, 0.4]])  # sqrt(0.2 * 0.8) = 0.4
    torch.testing.assert_close(priors.cxcywh, expected)
    assert priors.boxes_per_location() == [3]


def test_non_square_input_keeps_ratio_boxes_true_in_pixels():
    spec = AnchorSpec(scales=(0.5, 1.0), aspect_ratios=((1.0, 2.0),), extra_square=False)
    priors = boxes(spec, (100, 200), [(1, 2)])  # H=100, W=200
    square, wide = priors.cxcywh[0], priors.cxcywh[1]
    # scale is relative to the height: a 50 px square is 0.25 of the width and 0.5 of the height
    torch.testing.assert_close(square, torch.tensor([0.25, 0.5, 0.25, 0.5]))
    pixel_w, pixel_h = wide[2] * 200, wide[3] * 100
    assert pixel_w / pixel_h == pytest.approx(2.0)
    assert pixel_w * pixel_h == pytest.approx(50.0 * 50.0)
    torch.testing.assert_close(priors.cxcywh[2:, :2], torch.tensor([[0.75, 0.5], [0.75, 0.5]]))


def test_explicit_steps_place_centres_at_step_multiples():
    spec = AnchorSpec(scales=(0.1, 0.2), aspect_ratios=((1.0,),), extra_square=False)
    priors = boxes(spec, (300, 300), [(3, 3)], steps=[64])
    # (j + 0.5) * 64 px = 32, 96, 160 px, not the 50, 150, 250 px that 300 / 3 would give
    expected_x = torch.tensor([32.0, 96.0, 160.0]) / 300
    torch.testing.assert_close(priors.cxcywh[:3, 0], expected_x)
    torch.testing.assert_close(priors.cxcywh[::3, 1], expected_x)


def test_explicit_steps_on_non_square_input():
    spec = AnchorSpec(scales=(0.1, 0.2), aspect_ratios=((1.0,),), extra_square=False)
    priors = boxes(spec, (100, 200), [(1, 2)], steps=[80])
    torch.testing.assert_close(priors.cxcywh[:, :2], torch.tensor([[40 / 200, 40 / 100],
                                                                   [120 / 200, 40 / 100]]))


def test_clip_clamps_oversized_boxes_only_when_asked():
    spec = AnchorSpec(scales=(1.5, 2.0), aspect_ratios=((1.0,),), extra_square=False)
    assert boxes(spec, (10, 10), [(1, 1)]).cxcywh[0, 2:].tolist() == [1.0, 1.0]
    assert boxes(spec, (10, 10), [(1, 1)], clip=False).cxcywh[0, 2:].tolist() == [1.5, 1.5]


def test_ssd300_spec_gives_8732_boxes():
    spec = AnchorSpec.ssd_paper()
    # first scale 0.1, then 0.2 .. 0.9 in steps of (0.9 - 0.2) / 4, then one more for the last extra box
    assert spec.scales == pytest.approx((0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075))
    assert spec.boxes_per_location() == [4, 6, 6, 6, 4, 4]
    priors = boxes(spec, (300, 300), SSD300_FEATURE_MAPS)
    assert len(priors) == 8732
    assert priors.cxcywh.shape == (8732, 4)
    first_layer = 38 * 38 * 4
    torch.testing.assert_close(priors.cxcywh[first_layer], torch.tensor([0.5 / 19, 0.5 / 19, 0.2, 0.2]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(scales=(0.1, 0.2, 0.3), aspect_ratios=((1.0,),)), "need 2 scales"),
    (dict(scales=(0.0, 0.2), aspect_ratios=((1.0,),)), "positive"),
    (dict(scales=(0.1, 0.2), aspect_ratios=((1.0, -2.0),)), "positive"),
    (dict(scales=(0.1, 0.2), aspect_ratios=((),), extra_square=False), "extra_square"),
])
def test_anchor_spec_rejects_inconsistent_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnchorSpec(**kwargs)


def test_layer_without_ratios_has_only_the_extra_square():
    spec = AnchorSpec(scales=(0.25, 1.0), aspect_ratios=((),))
    priors = boxes(spec, (8, 8), [(1, 1)])
    assert priors.boxes_per_location() == [1]
    torch.testing.assert_close(priors.cxcywh, torch.tensor([[0.5, 0.5, 0.5, 0.5]]))


def test_feature_map_count_must_match_spec_layers():
    spec = AnchorSpec(scales=(0.1, 0.2), aspect_ratios=((1.0,),))
    with pytest.raises(ValueError, match="2 feature maps but the anchor spec has 1"):
        boxes(spec, (100, 100), [(2, 2), (1, 1)])
