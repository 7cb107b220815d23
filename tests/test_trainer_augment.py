"""trainer.augment / trainer.ssd_transforms: presets, the SSD min-IoU crop, expand, seeding, serialisation.

Synthetic images with known boxes; every random pipeline is seeded. Boxes are absolute pixel-edge xyxy.
"""

from __future__ import annotations

import json

import albumentations as A
import cv2
import numpy as np
import pytest

from trainer.augment import (
    PRESETS,
    RESIZE_MODES,
    build_augmentation,
    describe_augmentation,
    seed_augmentation,
)
from trainer.ssd_transforms import SSDExpand, SSDRandomCrop, centres_inside, crop_keeps_box_at_min_iou, iou_with_rect

IMAGE_H, IMAGE_W = 300, 400
OUT_SIZE = (120, 160)  # (H, W): small outputs keep the tests fast
COORD_TOL = 1e-3  # pixels: albumentations normalises boxes in float32
TRIALS = 150
MIN_IOU_MODES = (0.1, 0.3, 0.5, 0.7, 0.9)
# A large box (IoU 0.9 with a patch is reachable), a medium one, a small one and one cut by the right edge.
KNOWN_BOXES = np.array(
    [[40, 30, 360, 270], [20, 20, 120, 100], [330, 200, 370, 240], [350, 10, 400, 90]], dtype=np.float64
)


def make_image(height: int = IMAGE_H, width: int = IMAGE_W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def box_params() -> A.BboxParams:
    return A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True)


def run_crop(crop: SSDRandomCrop, boxes: np.ndarray, seed: int, trials: int = TRIALS):
    """Yield (output, crop params) for ``trials`` seeded calls of ``crop`` on the known image."""
    pipeline = A.Compose([crop], bbox_params=box_params())
    seed_augmentation(pipeline, seed)
    image = make_image()
    labels = np.arange(len(boxes), dtype=np.int64)  # a box's label is its index: kept boxes are traceable
    for _ in range(trials):
        out = pipeline(image=image, bboxes=boxes.astype(np.float32), labels=labels)
        yield out, dict(crop.params)


# -- the min-IoU rule ------------------------------------------------------------------------------------------


def test_min_iou_rule_by_hand():
    """Hand-computed IoUs. ssd.pytorch's test ``overlap.min() < min_iou and max_iou < overlap.max()`` (with
    max_iou = inf) accepts every one of these patches; the rule must reject those below the min IoU."""
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    patch = (0, 0, 20, 20)  # IoU = 100 / 400 = 0.25
    assert iou_with_rect(box, patch)[0] == pytest.approx(0.25)
    assert crop_keeps_box_at_min_iou(box, patch, 0.2)
    assert not crop_keeps_box_at_min_iou(box, patch, 0.3)
    # IoU 50 / 160 = 0.3125 but the centre x = 10.5 is outside the patch: the box would be dropped, so it
    # cannot be the box that justifies the patch.
    cut = np.array([[5.0, 0.0, 16.0, 10.0]])
    assert iou_with_rect(cut, (0, 0, 10, 10))[0] == pytest.approx(0.3125)
    assert not centres_inside(cut, (0, 0, 10, 10))[0]
    assert not crop_keeps_box_at_min_iou(cut, (0, 0, 10, 10), 0.3)
    assert not crop_keeps_box_at_min_iou(np.empty((0, 4)), patch, 0.0)


@pytest.mark.parametrize("min_iou", MIN_IOU_MODES)
def test_min_iou_crop_keeps_a_box_at_the_chosen_iou(min_iou):
    """On every output: a kept box has IoU >= min_iou with the patch, exactly the boxes whose centres were
    inside are kept, and they equal the originals shifted and clipped to the patch. With the comparison bug
    every patch is accepted, and the first one below ``min_iou`` fails here."""
    crop = SSDRandomCrop(min_ious=(min_iou,))
    # At 0.9 a patch must nearly coincide with the large box: about 1 image in 10 finds one in 50 trials.
    trials = TRIALS * 4 if min_iou >= 0.9 else TRIALS
    cropped = 0
    for out, params in run_crop(crop, KNOWN_BOXES, seed=int(min_iou * 100), trials=trials):
        assert params["min_iou"] == min_iou
        if params["crop_coords"] is None:
            continue
        cropped += 1
        x0, y0, x1, y1 = params["crop_coords"]
        assert out["image"].shape[:2] == (y1 - y0, x1 - x0)
        assert (x1 - x0) >= int(0.3 * IMAGE_W) - 1 and (y1 - y0) >= int(0.3 * IMAGE_H) - 1
        assert 0.5 - 0.02 <= (y1 - y0) / (x1 - x0) <= 2.0 + 0.02  # pixel truncation moves it slightly
        kept = np.asarray(out["labels"], dtype=np.int64)
        # A centre exactly on the patch edge may go either way (boxes pass through float32), so compare
        # with the patch grown and shrunk by COORD_TOL.
        surely_inside = centres_inside(KNOWN_BOXES, (x0 + COORD_TOL, y0 + COORD_TOL, x1 - COORD_TOL, y1 - COORD_TOL))
        maybe_inside = centres_inside(KNOWN_BOXES, (x0 - COORD_TOL, y0 - COORD_TOL, x1 + COORD_TOL, y1 + COORD_TOL))
        assert set(np.flatnonzero(surely_inside)) <= set(kept.tolist()) <= set(np.flatnonzero(maybe_inside))
        assert iou_with_rect(KNOWN_BOXES[kept], params["crop_coords"]).max() >= min_iou - 1e-6
        expected = KNOWN_BOXES[kept] - [x0, y0, x0, y0]
        expected = np.clip(expected, 0, [x1 - x0, y1 - y0, x1 - x0, y1 - y0])
        np.testing.assert_allclose(np.asarray(out["bboxes"]), expected, atol=COORD_TOL)
    assert cropped >= 5, f"only {cropped} of {trials} images were cropped: the test saw too little"


def test_crop_needs_only_one_box_at_the_min_iou():
    """Two distant boxes: no patch reaches IoU 0.5 with both, so the all-boxes reading would never crop."""
    boxes = np.array([[10, 10, 150, 120], [250, 180, 390, 290]], dtype=np.float64)
    crop = SSDRandomCrop(min_ious=(0.5,))
    cropped = sum(params["crop_coords"] is not None for _, params in run_crop(crop, boxes, seed=5, trials=60))
    assert cropped >= 12  # 24 with this seed; the all-boxes reading gives 0


def test_crop_falls_back_to_the_whole_image():
    """A 5x5 box can never reach IoU 0.9 with a patch of at least 0.3 of each side: 50 trials, then no crop."""
    tiny = np.array([[100, 100, 105, 105]], dtype=np.float64)
    image = make_image()
    for out, params in run_crop(SSDRandomCrop(min_ious=(0.9,)), tiny, seed=1, trials=5):
        assert params["crop_coords"] is None
        np.testing.assert_array_equal(out["image"], image)
        np.testing.assert_allclose(np.asarray(out["bboxes"]), tiny, atol=COORD_TOL)


def test_no_crop_mode_returns_the_image_unchanged():
    image = make_image()
    for out, params in run_crop(SSDRandomCrop(min_ious=(None,)), KNOWN_BOXES, seed=2, trials=5):
        assert params["crop_coords"] is None
        np.testing.assert_array_equal(out["image"], image)
        assert np.asarray(out["labels"]).tolist() == [0, 1, 2, 3]


def test_zero_box_image_is_cropped_freely():
    for out, params in run_crop(SSDRandomCrop(min_ious=(0.9,)), np.empty((0, 4)), seed=3, trials=10):
        x0, y0, x1, y1 = params["crop_coords"]
        assert out["image"].shape[:2] == (y1 - y0, x1 - x0)
        assert len(out["bboxes"]) == 0 and len(out["labels"]) == 0


# -- expand ----------------------------------------------------------------------------------------------------


def test_expand_shifts_boxes_exactly_for_given_params():
    """Image 100 wide x 50 high on a 200 x 100 canvas at offset (30, 20): box (10, 5, 40, 25) -> (40, 25, 70, 45)."""
    expand = SSDExpand(max_ratio=2.0, fill=(1, 2, 3), p=1.0)
    params = {"canvas_hw": (100, 200), "offset_xy": (30, 20), "shape": (50, 100, 3)}
    normalised_in = np.array([[10 / 100, 5 / 50, 40 / 100, 25 / 50, 7.0]])  # last column: a label
    shifted = expand.apply_to_bboxes(normalised_in, **params)
    np.testing.assert_allclose(shifted, [[40 / 200, 25 / 100, 70 / 200, 45 / 100, 7.0]])
    image = make_image(50, 100)
    canvas = expand.apply(image, **params)
    assert canvas.shape == (100, 200, 3)
    np.testing.assert_array_equal(canvas[20:70, 30:130], image)
    assert (canvas[:20] == [1, 2, 3]).all() and (canvas[:, :30] == [1, 2, 3]).all()


def test_expand_in_a_pipeline_shifts_boxes_by_the_drawn_offset():
    expand = SSDExpand(max_ratio=4.0, fill=(123, 117, 104), p=1.0)
    pipeline = A.Compose([expand], bbox_params=box_params())
    seed_augmentation(pipeline, 4)
    image = make_image()
    for _ in range(5):
        out = pipeline(image=image, bboxes=KNOWN_BOXES, labels=np.arange(4))
        (canvas_h, canvas_w), (left, top) = expand.params["canvas_hw"], expand.params["offset_xy"]
        assert out["image"].shape[:2] == (canvas_h, canvas_w)
        assert canvas_w <= 4 * IMAGE_W and canvas_h <= 4 * IMAGE_H
        np.testing.assert_array_equal(out["image"][top:top + IMAGE_H, left:left + IMAGE_W], image)
        np.testing.assert_allclose(out["bboxes"], KNOWN_BOXES + [left, top, left, top], atol=COORD_TOL)


# -- presets ---------------------------------------------------------------------------------------------------


def random_boxes(rng: np.random.Generator) -> np.ndarray:
    """1 to 5 boxes, some reaching past the image edge (clipped on input)."""
    count = int(rng.integers(1, 6))
    x0 = rng.uniform(-20, IMAGE_W - 30, count)
    y0 = rng.uniform(-20, IMAGE_H - 30, count)
    return np.stack([x0, y0, x0 + rng.uniform(8, 200, count), y0 + rng.uniform(8, 150, count)], axis=1)


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
@pytest.mark.parametrize("preset", PRESETS)
def test_boxes_stay_inside_the_output_after_every_preset(preset, resize_mode):
    pipeline = build_augmentation(preset, size=OUT_SIZE, seed=11, resize_mode=resize_mode)
    rng = np.random.default_rng(11)
    image = make_image()
    for _ in range(40):
        boxes = random_boxes(rng)
        out = pipeline(image=image, bboxes=boxes, labels=np.arange(1, len(boxes) + 1))
        assert out["image"].shape == (*OUT_SIZE, 3) and out["image"].dtype == np.uint8
        result = np.asarray(out["bboxes"]).reshape(-1, 4)
        assert len(result) == len(out["labels"])
        assert (result[:, :2] >= 0).all()
        assert (result[:, 2] <= OUT_SIZE[1]).all() and (result[:, 3] <= OUT_SIZE[0]).all()
        assert (result[:, 2] - result[:, 0] >= 1.0 - COORD_TOL).all()  # min_box_side_px
        assert (result[:, 3] - result[:, 1] >= 1.0 - COORD_TOL).all()


@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
@pytest.mark.parametrize("preset", PRESETS)
def test_zero_box_images_pass_through_every_preset(preset, resize_mode):
    pipeline = build_augmentation(preset, size=OUT_SIZE, seed=12, resize_mode=resize_mode)
    for _ in range(10):
        out = pipeline(image=make_image(), bboxes=np.empty((0, 4)), labels=np.empty(0, dtype=np.int64))
        assert out["image"].shape == (*OUT_SIZE, 3)
        assert len(out["bboxes"]) == 0 and len(out["labels"]) == 0


def test_none_preset_is_a_plain_resize():
    height, width = OUT_SIZE
    image = make_image()
    out = build_augmentation("none", size=OUT_SIZE)(image=image, bboxes=KNOWN_BOXES, labels=np.arange(1, 5))
    np.testing.assert_array_equal(out["image"], cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    scale = [width / IMAGE_W, height / IMAGE_H] * 2
    np.testing.assert_allclose(out["bboxes"], KNOWN_BOXES * scale, atol=COORD_TOL)
    assert np.asarray(out["labels"]).tolist() == [1, 2, 3, 4]


def test_letterbox_keeps_the_aspect_ratio_and_maps_boxes():
    """400 x 300 into 160 wide x 160 high: scale 0.4 -> 160 x 120, padded 20 rows above and below."""
    size = (160, 160)
    mean = (10, 20, 30)
    image = make_image()
    out = build_augmentation("none", size=size, mean=mean, resize_mode="letterbox")(
        image=image, bboxes=KNOWN_BOXES, labels=np.arange(1, 5))
    scale, pad_top = 0.4, 20
    assert (out["image"][:pad_top] == mean).all() and (out["image"][pad_top + 120:] == mean).all()
    np.testing.assert_array_equal(out["image"][pad_top:pad_top + 120],
                                  cv2.resize(image, (160, 120), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(out["bboxes"], KNOWN_BOXES * scale + [0, pad_top, 0, pad_top], atol=COORD_TOL)


def test_ssd_with_every_probability_at_zero_is_the_none_preset():
    off = dict(brightness_p=0.0, contrast_p=0.0, saturation_p=0.0, hue_p=0.0, channel_swap_p=0.0,
               expand_p=0.0, crop_min_ious=(None,), flip_p=0.0)
    image = make_image()
    ssd = build_augmentation("ssd", size=OUT_SIZE, seed=1, **off)(image=image, bboxes=KNOWN_BOXES, labels=np.arange(4))
    plain = build_augmentation("none", size=OUT_SIZE)(image=image, bboxes=KNOWN_BOXES, labels=np.arange(4))
    np.testing.assert_array_equal(ssd["image"], plain["image"])
    np.testing.assert_allclose(ssd["bboxes"], plain["bboxes"])


def test_unknown_override_names_the_closest_setting():
    with pytest.raises(ValueError, match="unknown setting 'flip_pp'; did you mean 'flip_p'"):
        build_augmentation("ssd", size=OUT_SIZE, flip_pp=0.0)
    with pytest.raises(ValueError, match="did you mean 'ssd'"):
        build_augmentation("sdd", size=OUT_SIZE)
    with pytest.raises(ValueError, match="expand_max_ratio"):
        build_augmentation("ssd", size=OUT_SIZE, expand_max_ratio=0.5)
    with pytest.raises(ValueError, match="min_ious"):
        build_augmentation("ssd", size=OUT_SIZE, crop_min_ious=[0.3, 1.5])


# -- seeding and serialisation ---------------------------------------------------------------------------------


def outputs(pipeline: A.Compose, calls: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    image = make_image()
    results = []
    for _ in range(calls):
        out = pipeline(image=image, bboxes=KNOWN_BOXES, labels=np.arange(4))
        results.append((out["image"], np.asarray(out["bboxes"])))
    return results


def assert_same_outputs(first, second) -> None:
    for (image_a, boxes_a), (image_b, boxes_b) in zip(first, second):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(boxes_a, boxes_b)


def test_same_seed_same_output_and_another_seed_differs():
    first = outputs(build_augmentation("ssd", size=OUT_SIZE, seed=21))
    assert_same_outputs(first, outputs(build_augmentation("ssd", size=OUT_SIZE, seed=21)))
    other = outputs(build_augmentation("ssd", size=OUT_SIZE, seed=22))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_seeded_transforms_draw_independently():
    """albumentations' Compose(seed=s) seeds every transform alike, so two p=0.5 transforms fire together;
    the shared stream from seed_augmentation must not."""
    pipeline = build_augmentation("ssd", size=OUT_SIZE, seed=5)
    brightness, contrast = pipeline.transforms[0], pipeline.transforms[1]
    fired = []
    for _ in range(60):
        pipeline(image=make_image(60, 80), bboxes=np.empty((0, 4)), labels=np.empty(0, dtype=np.int64))
        fired.append((bool(brightness.params), bool(contrast.params)))
    assert any(b != c for b, c in fired)


@pytest.mark.filterwarnings("ignore:Argument\\(s\\) 'padding' are not valid for transform PadIfNeeded")
@pytest.mark.parametrize("resize_mode", RESIZE_MODES)
def test_to_dict_round_trip_reproduces_the_pipeline(resize_mode):
    pipeline = build_augmentation("ssd", size=OUT_SIZE, seed=31, resize_mode=resize_mode)
    record = json.loads(json.dumps(describe_augmentation(pipeline)))
    assert record["seed"] == 31
    assert [step["name"] for step in record["steps"]][5:7] == ["SSDExpand", "SSDRandomCrop"]
    restored = A.from_dict(record["serialized"])
    seed_augmentation(restored, 31)
    assert_same_outputs(outputs(pipeline), outputs(restored))


def test_a_setting_the_preset_does_not_use_is_reported(caplog):
    with caplog.at_level("WARNING", logger="trainer.augment"):
        build_augmentation("none", size=OUT_SIZE, flip_p=0.0)
    assert "does not use flip_p" in caplog.text
