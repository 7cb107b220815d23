"""The pixel convention (curate/boxes.py), checked with boxes whose answers are computed by hand."""

from __future__ import annotations

import pytest

from curate.boxes import (
    PixelConvention,
    box_area,
    edges_to_relative_xywh,
    edges_to_source,
    relative_xywh_to_edges,
    source_to_edges,
    xywh_to_xyxy,
)

VOC = PixelConvention.VOC_ONE_BASED
LABELIMG = PixelConvention.EDGES_ZERO_BASED

# A 10 px wide, 20 px tall image.
WIDTH, HEIGHT = 10, 20


def test_voc_box_covering_first_ten_pixels_becomes_edges_zero_to_ten():
    assert source_to_edges((1, 1, 10, 10), VOC) == (0.0, 0.0, 10.0, 10.0)


def test_labelimg_box_is_already_edges():
    assert source_to_edges((0, 0, 10, 10), LABELIMG) == (0.0, 0.0, 10.0, 10.0)


def test_voc_box_becomes_fiftyone_relative_box():
    edges = source_to_edges((1, 1, 10, 10), VOC)
    assert edges_to_relative_xywh(edges, WIDTH, HEIGHT) == pytest.approx([0.0, 0.0, 1.0, 0.5])


def test_labelimg_box_becomes_fiftyone_relative_box():
    edges = source_to_edges((0, 0, 10, 10), LABELIMG)
    assert edges_to_relative_xywh(edges, WIDTH, HEIGHT) == pytest.approx([0.0, 0.0, 1.0, 0.5])


def test_voc_and_labelimg_boxes_of_the_same_square_agree():
    assert source_to_edges((1, 1, 10, 10), VOC) == source_to_edges((0, 0, 10, 10), LABELIMG)


def test_voc_full_image_box_spans_the_whole_image():
    # xmin=1, xmax=W is the full width in the devkit.
    edges = source_to_edges((1, 1, WIDTH, HEIGHT), VOC)
    assert edges_to_relative_xywh(edges, WIDTH, HEIGHT) == pytest.approx([0.0, 0.0, 1.0, 1.0])


def test_voc_single_pixel_box_is_one_pixel_wide():
    # pixel (5, 7) 1-based is pixel (4, 6) 0-based, covering [4, 5) x [6, 7).
    assert source_to_edges((5, 7, 5, 7), VOC) == (4.0, 6.0, 5.0, 7.0)


def test_offset_voc_box_relative_values():
    # VOC (3, 5, 8, 14): edges (2, 4, 8, 14) -> x=2/10, y=4/20, w=6/10, h=10/20.
    edges = source_to_edges((3, 5, 8, 14), VOC)
    assert edges_to_relative_xywh(edges, WIDTH, HEIGHT) == pytest.approx([0.2, 0.2, 0.6, 0.5])


@pytest.mark.parametrize("convention", [VOC, LABELIMG])
@pytest.mark.parametrize("box", [(1, 1, 10, 10), (3, 5, 8, 14), (2.5, 3.25, 7.75, 19.5)])
def test_source_edges_source_round_trip(convention, box):
    back = edges_to_source(source_to_edges(box, convention), convention)
    assert back == pytest.approx(tuple(float(v) for v in box))


def test_edges_to_voc_source_adds_one_to_the_minimum_only():
    assert edges_to_source((0, 0, 10, 10), VOC) == (1.0, 1.0, 10.0, 10.0)


def test_edges_to_labelimg_source_is_unchanged():
    assert edges_to_source((0, 0, 10, 10), LABELIMG) == (0.0, 0.0, 10.0, 10.0)


def test_source_to_edges_returns_floats():
    assert all(isinstance(v, float) for v in source_to_edges(("1", "2", "3", "4"), VOC))


def test_relative_to_edges_known_box():
    # [0.2, 0.25, 0.5, 0.5] on 10x20 -> x0=2, y0=5, x1=(0.7)*10=7, y1=(0.75)*20=15.
    assert relative_xywh_to_edges([0.2, 0.25, 0.5, 0.5], WIDTH, HEIGHT) == pytest.approx((2, 5, 7, 15))


@pytest.mark.parametrize("edges", [(0, 0, 10, 20), (2, 5, 7, 15), (1.5, 0.5, 9.25, 3.0)])
def test_edges_relative_edges_round_trip(edges):
    relative = edges_to_relative_xywh(edges, WIDTH, HEIGHT)
    assert relative_xywh_to_edges(relative, WIDTH, HEIGHT) == pytest.approx(edges)


@pytest.mark.parametrize("relative", [[0.0, 0.0, 1.0, 0.5], [0.2, 0.25, 0.5, 0.5], [0.1, 0.9, 0.3, 0.05]])
def test_relative_edges_relative_round_trip(relative):
    edges = relative_xywh_to_edges(relative, WIDTH, HEIGHT)
    assert edges_to_relative_xywh(edges, WIDTH, HEIGHT) == pytest.approx(relative)


def test_xywh_to_xyxy_known_box():
    assert xywh_to_xyxy([3, 4, 10, 20]) == (3, 4, 13, 24)


def test_xywh_to_xyxy_zero_size_box():
    assert xywh_to_xyxy([5, 5, 0, 0]) == (5, 5, 5, 5)


def test_box_area_known_box():
    assert box_area((2, 5, 7, 15)) == 50.0


def test_box_area_zero_width_is_zero():
    assert box_area((3, 0, 3, 10)) == 0.0


def test_box_area_negative_width_counts_as_zero():
    assert box_area((10, 0, 2, 10)) == 0.0


def test_box_area_negative_height_counts_as_zero():
    assert box_area((0, 10, 10, 2)) == 0.0


def test_box_area_both_extents_negative_is_zero_not_positive():
    # (-8) * (-8) would be 64 without the clamp.
    assert box_area((10, 10, 2, 2)) == 0.0
