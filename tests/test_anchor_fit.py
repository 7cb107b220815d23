"""curate.anchor_fit / anchor_grid / anchor_refine / anchor_coverage: fitting SSD default boxes and measuring them.

Hand-computed expectations on tiny grids; synthetic boxes from known clusters; the trainer's own resize and
default boxes as the references; torchvision's DefaultBoxGenerator for its SSD300 / SSDlite320 boxes.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from curate.anchor_coverage import (SIZE_BINS, TORCHVISION_SSD300, TORCHVISION_SSDLITE320, PriorSet, coverage,
                                    model_prior_set, torchvision_default_specs, torchvision_generator_xyxy)
from curate.anchor_fit import (RESIZE_MODES, assign_layers, fit_anchor_spec, kmeans_iou, resized_box_sizes,
                               spec_from_clusters)
from curate.anchor_grid import (anchor_shapes_px, best_possible_iou, coverage_ceiling, grid_best_iou,
                                nearest_centre_offsets, too_small_mask, too_small_report)
from trainer.priors import AnchorSpec, DefaultBoxes

SEED = 0
VGG300_MAPS = ((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1))  # vgg16 @ 300 (SSD300)
SIDE = 300
KNOWN_CLUSTERS = np.array([[16.0, 12.0], [40.0, 40.0], [90.0, 30.0], [30.0, 110.0], [180.0, 150.0]])
SPREAD = 0.04  # log-normal sigma around each known cluster


@pytest.fixture(scope="module", autouse=True)
def single_cpu_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def clustered_boxes(count_per_cluster: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shapes = np.repeat(KNOWN_CLUSTERS, count_per_cluster, axis=0)
    return shapes * np.exp(rng.normal(0.0, SPREAD, shapes.shape))


def boxes_at_random_positions(wh: np.ndarray, seed: int) -> np.ndarray:
    """Relative xyxy of boxes of ``wh`` px placed uniformly inside a SIDE x SIDE input."""
    rng = np.random.default_rng(seed)
    centres = wh / 2 + rng.random(wh.shape) * (SIDE - wh)
    return np.concatenate([centres - wh / 2, centres + wh / 2], axis=1) / SIDE


# ---------------------------------------------------------------------------------------------------------------
# resize


def test_stretch_scales_x_and_y_independently():
    # a 200 x 100 image stretched to 300 x 300: x by 1.5, y by 3
    wh = resized_box_sizes([[10, 10, 60, 30]], [200, 100], input_size_hw=(300, 300), resize_mode="stretch")
    np.testing.assert_allclose(wh, [[75.0, 60.0]])


def test_letterbox_uses_one_scale_and_the_rounded_image_size():
    # 200 x 100 -> scale min(300/100, 300/200) = 1.5 -> 300 x 150: a 50 x 20 box becomes 75 x 30
    wh = resized_box_sizes([[10, 10, 60, 30]], [200, 100], input_size_hw=(300, 300), resize_mode="letterbox")
    np.testing.assert_allclose(wh, [[75.0, 30.0]])
    # 333 x 500 -> scale 0.6 -> 199.8 px wide, rounded to 200: a 33.3 px box is 33.3 / 333 * 200 = 20 px
    wh = resized_box_sizes([[0, 0, 33.3, 50]], [333, 500], input_size_hw=(300, 300), resize_mode="letterbox")
    np.testing.assert_allclose(wh, [[20.0, 30.0]])


def test_boxes_are_clipped_to_their_image_first():
    wh = resized_box_sizes([[-10, 90, 20, 130]], [100, 100], input_size_hw=(100, 100))
    np.testing.assert_allclose(wh, [[20.0, 10.0]])


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_sizes_match_the_trainer_resize(resize_mode):
    from trainer.augment import RESIZE_MODES as TRAINER_MODES
    from trainer.augment import build_augmentation

    assert RESIZE_MODES == TRAINER_MODES
    image = np.zeros((417, 333, 3), dtype=np.uint8)  # h x w: both sides scale by odd factors
    boxes = np.array([[10.0, 20.0, 110.0, 77.0], [200.5, 300.25, 333.0, 417.0]])
    out = build_augmentation("none", size=(300, 256), resize_mode=resize_mode)(
        image=image, bboxes=boxes, labels=np.array([1, 2]))
    expected = np.array(out["bboxes"])
    expected_wh = expected[:, 2:] - expected[:, :2]
    wh = resized_box_sizes(boxes, [333, 417], input_size_hw=(300, 256), resize_mode=resize_mode)
    np.testing.assert_allclose(wh, expected_wh, rtol=1e-5)


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="resize_mode"):
        resized_box_sizes([[0, 0, 1, 1]], [10, 10], input_size_hw=(10, 10), resize_mode="crop")


# ---------------------------------------------------------------------------------------------------------------
# k-means


def test_kmeans_recovers_known_clusters():
    result = kmeans_iou(clustered_boxes(400), len(KNOWN_CLUSTERS), seed=SEED)
    expected = KNOWN_CLUSTERS[np.argsort(KNOWN_CLUSTERS.prod(axis=1))]
    np.testing.assert_allclose(result.centres, expected, rtol=0.03)
    assert result.mean_iou > 0.9
    assert np.bincount(result.labels).tolist() == [400] * 5


def test_kmeans_is_deterministic_for_a_seed():
    wh = clustered_boxes(200) * np.exp(np.random.default_rng(1).normal(0, 0.3, (1000, 2)))  # overlapping
    first, again = kmeans_iou(wh, 6, seed=3), kmeans_iou(wh, 6, seed=3)
    np.testing.assert_array_equal(first.centres, again.centres)
    np.testing.assert_array_equal(first.labels, again.labels)


def test_kmeans_on_a_sample_still_assigns_every_box():
    wh = clustered_boxes(1000)
    result = kmeans_iou(wh, 5, seed=SEED, sample_size=500)
    assert result.sample_size == 500 and result.labels.shape == (5000,)
    expected = KNOWN_CLUSTERS[np.argsort(KNOWN_CLUSTERS.prod(axis=1))]
    np.testing.assert_allclose(result.centres, expected, rtol=0.03)


@pytest.mark.parametrize("wh, k, message", [
    ([[10, 10], [0, 5]], 1, "positive"),
    ([[10, 10], [10, 10], [20, 20]], 3, "distinct"),
])
def test_kmeans_refuses_bad_input(wh, k, message):
    with pytest.raises(ValueError, match=message):
        kmeans_iou(np.array(wh, dtype=float), k)


# ---------------------------------------------------------------------------------------------------------------
# coverage on tiny grids, by hand: a 2 x 2 map on a 100 x 100 input, one 50 px square per cell

ONE_SQUARE = AnchorSpec(scales=(0.5, 1.0), aspect_ratios=((1.0,),), extra_square=False)


def two_by_two() -> DefaultBoxes:
    return DefaultBoxes(spec=ONE_SQUARE, image_size=(100, 100), feature_map_sizes=[(2, 2)])


@pytest.mark.parametrize("as_tensor", [False, True])  # grid path and plain box_iou path
def test_coverage_by_hand_on_a_two_by_two_grid(as_tensor):
    priors = two_by_two()
    gt = np.array([[0.0, 0.0, 0.5, 0.5],  # equals the top-left prior: IoU 1
                   [0.25, 0.0, 0.75, 0.5],  # half a cell right: 25 x 50 / (2500 + 2500 - 1250) = 1/3 with two
                   [0.125, 0.0, 0.625, 0.5],  # a quarter cell: 37.5 x 50 / (5000 - 1875) = 0.6 with one
                   [0.225, 0.225, 0.275, 0.275]])  # 5 px square at a centre: 25 / 2500 = 0.01
    report = coverage(gt, priors.xyxy() if as_tensor else priors, labels=["a", "b", "b", "c"])
    np.testing.assert_allclose(report.best_iou, [1.0, 1 / 3, 0.6, 0.01], rtol=1e-5)
    assert report.positives.tolist() == [1, 0, 1, 0]
    assert report.overall.covered == 2 and report.overall.coverage == pytest.approx(0.5)
    assert report.overall.mean_positives == pytest.approx(0.5)
    assert report.per_class["b"].coverage == pytest.approx(0.5) and report.per_class["c"].coverage == 0.0
    assert report.num_priors == 4
    # sizes relative to the input: 0.5, 0.5, 0.5 and 0.05 (the "small" bin starts at 0.05)
    assert report.per_size[SIZE_BINS[-1].name].count == 3 and report.per_size[SIZE_BINS[1].name].count == 1


def test_a_box_overlapping_several_priors_counts_every_positive():
    spec = AnchorSpec(scales=(0.5, 0.72), aspect_ratios=((1.0, 1.2),), extra_square=True)
    priors = DefaultBoxes(spec=spec, image_size=(100, 100), feature_map_sizes=[(2, 2)])
    report = coverage(np.array([[0.0, 0.0, 0.5, 0.5]]), priors)
    brute = coverage(np.array([[0.0, 0.0, 0.5, 0.5]]), priors.xyxy())
    # the 50 px square (IoU 1), the 54.8 x 45.6 px 1.2-ratio box (50 x 45.6 / 2718 = 0.84) and the extra
    # sqrt(0.5 * 0.72) = 60 px square (2500 / 3600 = 0.69), all in the top-left cell; none elsewhere
    assert report.positives.tolist() == brute.positives.tolist() == [3]
    assert report.overall.mean_positives == 3.0


def test_degenerate_boxes_are_not_covered():
    report = coverage(np.array([[0.2, 0.2, 0.2, 0.6]]), two_by_two())
    assert report.overall.covered == 0 and report.best_iou[0] == 0.0


def test_grid_path_equals_box_iou_on_every_prior():
    """The closed form + windowed count equals box_iou over all 8,732 SSD300 priors, including the 10 x 10 map
    whose step-32 centres DefaultBoxes clamps to the input."""
    from trainer.model import SSD300_ANCHORS, SSD300_STEPS

    priors = DefaultBoxes(spec=SSD300_ANCHORS, image_size=(SIDE, SIDE), feature_map_sizes=list(VGG300_MAPS),
                          steps=list(SSD300_STEPS))
    rng = np.random.default_rng(SEED)
    wh = np.exp(rng.uniform(math.log(4), math.log(290), (600, 2)))
    gt = boxes_at_random_positions(wh, SEED)
    fast, brute = coverage(gt, priors), coverage(gt, priors.xyxy())
    np.testing.assert_array_equal(fast.positives, brute.positives)
    np.testing.assert_allclose(fast.best_iou, brute.best_iou, atol=2e-6)


def test_grid_best_iou_is_the_best_over_the_grid():
    rng = np.random.default_rng(SEED)
    maps, size = [(3, 4)], (90, 120)
    shapes = [[(25.0, 40.0), (60.0, 20.0)]]
    wh = rng.uniform(5, 80, (200, 2))
    centres = rng.uniform(0, 1, (200, 2)) * [120, 90]
    fast = grid_best_iou(wh, nearest_centre_offsets(centres, maps, size), shapes)
    cy, cx = (np.arange(3) + 0.5) * 30, (np.arange(4) + 0.5) * 30
    for column, (pw, ph) in enumerate(shapes[0]):
        prior = np.array([[x - pw / 2, y - ph / 2, x + pw / 2, y + ph / 2] for y in cy for x in cx])
        gt = np.concatenate([centres - wh / 2, centres + wh / 2], axis=1)
        expected = box_iou(torch.tensor(gt), torch.tensor(prior)).max(dim=1).values.numpy()
        np.testing.assert_allclose(fast[:, column], expected, atol=1e-9)


def test_best_possible_iou_matches_a_search_over_shapes():
    ratios = np.exp(np.linspace(math.log(0.2), math.log(4), 801))
    pw, ph = np.meshgrid(ratios, ratios)
    for u, v in [(0.0, 0.0), (0.2, 0.2), (0.2, 0.4), (0.3, 0.0), (0.125, 0.25), (0.45, 0.1)]:
        ox = np.clip(np.minimum(np.minimum(1, pw), (1 + pw) / 2 - u), 0, None)
        oy = np.clip(np.minimum(np.minimum(1, ph), (1 + ph) / 2 - v), 0, None)
        searched = (ox * oy / (1 + pw * ph - ox * oy)).max()
        assert best_possible_iou(u, v) == pytest.approx(searched, abs=2e-3)
        assert best_possible_iou(u, v) >= searched - 1e-12
    assert best_possible_iou(0.0, 0.0) == 1.0


def test_coverage_ceiling_bounds_every_spec():
    rng = np.random.default_rng(SEED)
    gt = boxes_at_random_positions(np.exp(rng.uniform(math.log(6), math.log(200), (400, 2))), SEED)
    ceiling = coverage_ceiling(gt, feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE))
    paper = coverage(gt, PriorSet("p", AnchorSpec.ssd_paper(), (SIDE, SIDE), VGG300_MAPS).priors())
    assert paper.overall.coverage <= ceiling < 1.0


# ---------------------------------------------------------------------------------------------------------------
# too small


def test_too_small_rule_by_hand():
    maps, size = [(30, 30)], (240, 240)  # stride 8; limit: a square of side 8 / 4 / ((sqrt(2) - 1) / 2) = 9.66 px
    wh = np.array([[9.5, 9.5], [9.8, 9.8], [40.0, 2.0], [0.0, 20.0], [3.0, 3.0], [200.0, 100.0]])
    assert too_small_mask(wh, feature_map_sizes=maps, input_size_hw=size).tolist() == [
        True, False, True, True, True, False]
    report = too_small_report(wh, feature_map_sizes=maps, input_size_hw=size)
    assert report.count == 4 and report.degenerate == 1 and report.total == 6
    assert report.examples == (3, 4, 2, 0)  # smallest first (sqrt area 0, 3, 8.9, 9.5)
    assert report.min_square_side_px == pytest.approx(2 / ((math.sqrt(2) - 1) / 2))
    assert report.finest_stride_px == (8.0, 8.0)


def test_fit_reports_boxes_too_small_for_the_finest_layer():
    wh = np.concatenate([clustered_boxes(60), [[3.0, 4.0], [2.0, 2.0]]])
    fit = fit_anchor_spec(wh, feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE), refine=False)
    assert fit.too_small.count == 2 and set(fit.too_small.examples) == {300, 301}


# ---------------------------------------------------------------------------------------------------------------
# from clusters to a spec, and the fit


def test_assignment_puts_small_clusters_on_fine_maps_and_large_on_coarse():
    layers = assign_layers(np.array([[20.0, 20.0], [280.0, 280.0], [100.0, 100.0]]),
                           feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE))
    # 20 px: no layer reaches 0.6 at the worst offset; the finest does best. 280 px: only centred positions
    # exist, so the 1 x 1 map is exact. 100 px: stride 30 gives (85/100)^2 / (2 - 0.7225) = 0.566 < 0.6,
    # stride 15.8 gives 0.78: the 19 x 19 map.
    assert layers.tolist() == [0, 5, 1]


def test_layer_without_clusters_gets_a_geometric_interpolated_scale():
    centres = np.array([[30.0, 30.0], [60.0, 30.0], [120.0, 120.0]])
    spec = spec_from_clusters(centres, np.array([10, 10, 10]), np.array([0, 0, 2]),
                              feature_map_sizes=[(38, 38), (19, 19), (10, 10)], input_size_hw=(SIDE, SIDE))
    s0 = math.sqrt(math.sqrt(30 * 30) * math.sqrt(60 * 30)) / SIDE  # geometric mean of the layer's sizes
    assert spec.scales[0] == pytest.approx(s0, abs=1e-4)
    assert spec.scales[1] == pytest.approx(math.sqrt(s0 * 0.4), abs=1e-4)
    assert spec.aspect_ratios == ((1.0, 2.0), (1.0,), (1.0,))
    assert spec.extra_square


def test_anchor_shapes_px_are_what_default_boxes_make():
    spec = AnchorSpec(scales=(0.5, 1.5, 2.0), aspect_ratios=((1.0, 2.0), (1.0,)), extra_square=True)
    size = (100, 200)  # H x W
    priors = DefaultBoxes(spec=spec, image_size=size, feature_map_sizes=[(1, 1), (1, 1)])
    shapes = [s for layer in anchor_shapes_px(spec, input_size_hw=size) for s in layer]
    np.testing.assert_allclose(np.array(shapes), priors.cxcywh[:, 2:].numpy() * [200, 100], rtol=1e-6)
    assert shapes[1] == pytest.approx((50 * math.sqrt(2), 50 / math.sqrt(2)))
    assert shapes[3] == pytest.approx((150.0, 100.0))  # 1.5 x 100 = 150 wide fits in 200; the height is clipped


def test_fitted_spec_builds_a_model_whose_head_matches_its_default_boxes():
    from trainer.model import build_ssd, feature_map_sizes

    model = build_ssd("tiny", num_classes=4, image_size=64)
    maps = feature_map_sizes(model.backbone, (64, 64))
    wh = clustered_boxes(40) * 64 / SIDE + 2.0
    fit = fit_anchor_spec(wh, feature_map_sizes=maps, input_size_hw=(64, 64), generations=20)
    fitted = build_ssd("tiny", num_classes=4, image_size=64, anchor_spec=fit.spec)
    per_location = fit.spec.boxes_per_location()
    assert [c for c, _ in fitted.head_channels()] == [n * 4 for n in per_location]
    assert [r for _, r in fitted.head_channels()] == [n * 4 for n in per_location]
    with torch.no_grad():
        cls_logits, loc = fitted(torch.zeros(1, 3, 64, 64))
    expected = sum(h * w * n for (h, w), n in zip(maps, per_location))
    assert cls_logits.shape[1] == loc.shape[1] == len(fitted.default_boxes) == expected


def test_fit_with_a_fixed_head_keeps_boxes_per_location():
    wh = clustered_boxes(50)
    fit = fit_anchor_spec(wh, feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE),
                          boxes_per_layer=[4, 6, 6, 6, 4, 4], refine=False)
    assert fit.spec.boxes_per_location() == [4, 6, 6, 6, 4, 4]  # refinement keeps it (test below)
    with pytest.raises(ValueError, match="boxes_per_layer"):
        fit_anchor_spec(wh, feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE), boxes_per_layer=1)


def test_fit_is_deterministic_and_refinement_never_hurts():
    wh = clustered_boxes(50) * np.exp(np.random.default_rng(2).normal(0, 0.2, (250, 2)))
    kwargs = dict(feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE), seed=7, generations=30,
                  boxes_per_layer=3)
    first, again = fit_anchor_spec(wh, **kwargs), fit_anchor_spec(wh, **kwargs)
    assert first.spec == again.spec
    assert first.spec.boxes_per_location() == [3] * 6
    assert first.fitness.value >= first.initial_fitness.value
    plain = fit_anchor_spec(wh, **kwargs, refine=False)
    assert plain.generations == 0 and plain.fitness == plain.initial_fitness


def test_fitted_small_box_coverage_beats_the_ssd_paper_defaults():
    rng = np.random.default_rng(SEED)
    wh = np.exp(rng.uniform(math.log(10), math.log(45), (1500, 2)))  # logos: 10-45 px at 300
    paper = AnchorSpec.ssd_paper()
    fit = fit_anchor_spec(wh, feature_map_sizes=VGG300_MAPS, input_size_hw=(SIDE, SIDE),
                          boxes_per_layer=paper.boxes_per_location(), generations=50)
    held_out = boxes_at_random_positions(np.exp(rng.uniform(math.log(10), math.log(45), (1500, 2))), seed=99)
    fitted = coverage(held_out, PriorSet("fit", fit.spec, (SIDE, SIDE), VGG300_MAPS).priors())
    default = coverage(held_out, PriorSet("paper", paper, (SIDE, SIDE), VGG300_MAPS).priors())
    assert fitted.num_priors == default.num_priors == 8732
    assert fitted.overall.coverage >= default.overall.coverage + 0.1
    assert fitted.overall.mean_best_iou > default.overall.mean_best_iou


# ---------------------------------------------------------------------------------------------------------------
# torchvision's and the backbones' default boxes


@pytest.mark.parametrize("name, count", [(TORCHVISION_SSD300, 8732), (TORCHVISION_SSDLITE320, 3234)])
def test_torchvision_specs_are_torchvisions_boxes(name, count):
    prior_set = torchvision_default_specs()[name]
    reference = torchvision_generator_xyxy(name)
    ours = prior_set.default_boxes().xyxy()
    assert len(reference) == len(ours) == count
    assert torch.equal(prior_set.priors(), reference)
    # the same boxes per location, in another order; DefaultBoxes clamps centres to the input, torchvision
    # does not (SSD300's 10 x 10 map with step 32 has centres at 304 px): compare only centres inside
    inside = (reference[:, :2] + reference[:, 2:]).div(2).le(1.0).all(dim=1)
    start = 0
    for (fh, fw), per_location in zip(prior_set.feature_map_sizes, prior_set.spec.boxes_per_location()):
        stop = start + fh * fw * per_location
        a = _sorted_per_location(ours[start:stop], per_location)
        b = _sorted_per_location(reference[start:stop], per_location)
        mask = inside[start:stop].reshape(-1, per_location).all(dim=1)
        torch.testing.assert_close(a[mask], b[mask], atol=1e-6, rtol=0)
        start = stop


def _sorted_per_location(boxes: torch.Tensor, per_location: int) -> torch.Tensor:
    grouped = boxes.reshape(-1, per_location, 4)
    key = (grouped[..., 2] - grouped[..., 0]) * 1000 + (grouped[..., 3] - grouped[..., 1])
    return torch.gather(grouped, 1, key.argsort(dim=1)[..., None].expand(-1, -1, 4))


def test_fitting_and_measuring_import_neither_fiftyone_nor_pymongo():
    code = ("import sys, curate.anchor_fit, curate.anchor_coverage; "
            "print(sorted(m for m in ('fiftyone', 'pymongo') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]"


def test_model_prior_set_uses_the_backbones_defaults():
    vgg = model_prior_set("vgg16", (SIDE, SIDE))
    assert vgg.feature_map_sizes == VGG300_MAPS and vgg.steps == (8.0, 16.0, 32.0, 64.0, 100.0, 300.0)
    assert len(vgg.priors()) == 8732
    spec = AnchorSpec(scales=(0.1, 0.2, 0.4, 0.8, 1.0), aspect_ratios=((1.0,),) * 4)
    fitted = model_prior_set("tiny", (64, 64), spec=spec)
    assert fitted.steps is None  # build_ssd derives steps from the maps for a given spec
    assert fitted.feature_map_sizes == ((16, 16), (8, 8), (4, 4), (2, 2)) and len(fitted.priors()) == 2 * 340
