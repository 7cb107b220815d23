"""SSD's two geometric augmentations as albumentations 2.x transforms (albumentations has neither).

* :class:`SSDExpand` ("zoom out"): place the image on a canvas up to ``max_ratio`` times larger on each
  side, filled with the dataset mean, so objects become small.
* :class:`SSDRandomCrop` ("zoom in"): the SSD paper's min-IoU patch sampler.

Both follow albumentations' conventions: random numbers come from the transform's ``py_random`` and
``random_generator`` (which ``Compose`` sets); parameters are drawn in ``get_params_dependent_on_data`` and
are visible afterwards in ``transform.params``; boxes arrive in albumentations' internal form (normalised
``xyxy`` of the current image, extra columns carry the labels) and leave normalised to the output image.
Clipping to the output image and dropping degenerate boxes is done by the pipeline's ``BboxParams`` after
every transform (so a ``min_visibility`` there still sees how much of a box the crop cut away). Both classes
register themselves for ``albumentations.from_dict`` when this module is imported.

The min-IoU rule, written once (:func:`crop_keeps_box_at_min_iou`): a sampled patch is accepted when some
ground-truth box whose centre lies inside the patch has IoU >= ``min_iou`` with the patch. The SSD paper
("sample a patch so that the minimum jaccard overlap with the objects is 0.1, 0.3, 0.5, 0.7, or 0.9") and
the original Caffe sampler accept a patch when *at least one* box reaches the IoU. ssd.pytorch
(amdegroot, issues #68 and #119) and its copy in lufficc/SSD (issue #50) test ``if overlap.min() < min_iou
and max_iou < overlap.max(): continue`` with ``max_iou = inf``: the second operand is always False, so every
patch passes and the chosen min IoU never matters. We also require the qualifying box to be one that is
kept (centre inside): otherwise, for min IoU < 0.5, a patch can be accepted because of a box that the centre
rule then drops. (For min IoU > 0.5 the two readings agree: a box whose centre is outside a patch has
IoU <= 0.5 with it.)
"""

from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np
from albumentations.augmentations.crops.functional import crop_bboxes_by_coords
from albumentations.core.transforms_interface import BaseTransformInitSchema, DualTransform
from albumentations.core.type_definitions import Targets
from pydantic import Field, field_validator

PixelRect = tuple[int, int, int, int]  # x0, y0, x1, y1 in whole pixel edges

# The SSD paper's sampler: no crop, or a patch with min IoU 0.1 .. 0.9 (the set; the paper's extra
# "random patch" mode is min IoU 0.0, which still needs a kept box).
SSD_MIN_IOUS: tuple[Optional[float], ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9)
SSD_MIN_PATCH_SCALE = 0.3  # each patch side is 0.3 .. 1 of the image side (Caffe ssd_pascal.py, ssd.pytorch)
SSD_PATCH_ASPECT_RANGE = (0.5, 2.0)  # patch height / width in pixels (SSD paper: between 1/2 and 2)
SSD_MAX_TRIALS = 50  # samples per image before giving up and keeping it uncropped (Caffe's max_trials)
SSD_EXPAND_MAX_RATIO = 4.0  # canvas side up to 4x the image side (SSD paper: "zoom out" to 16x the area)


def iou_with_rect(boxes: np.ndarray, rect: Any) -> np.ndarray:
    """IoU of every ``xyxy`` box ``[N, 4]`` with an ``xyxy`` rectangle in the same units: ``[N]`` for one
    rectangle, ``[T, N]`` for a ``[T, 4]`` stack of them."""
    r = _as_rects(rect)
    inter_w = np.clip(np.minimum(boxes[:, 2], r[..., 2]) - np.maximum(boxes[:, 0], r[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(boxes[:, 3], r[..., 3]) - np.maximum(boxes[:, 1], r[..., 1]), 0, None)
    inter = inter_w * inter_h
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = box_area + (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, np.finfo(np.float64).tiny), 0.0)


def centres_inside(boxes: np.ndarray, rect: Any) -> np.ndarray:
    """Whether each box centre lies strictly inside the rectangle (SSD's rule for keeping a box); shapes as
    :func:`iou_with_rect`."""
    r = _as_rects(rect)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (r[..., 0] < cx) & (cx < r[..., 2]) & (r[..., 1] < cy) & (cy < r[..., 3])


def crop_keeps_box_at_min_iou(boxes: np.ndarray, rect: Any, min_iou: float) -> Any:
    """SSD's acceptance rule: some box kept by the centre rule has IoU >= ``min_iou`` with the rectangle.
    A bool for one rectangle, a ``[T]`` bool array for a ``[T, 4]`` stack; False when there are no boxes."""
    keeps = np.any(centres_inside(boxes, rect) & (iou_with_rect(boxes, rect) >= min_iou), axis=-1)
    return bool(keeps) if keeps.ndim == 0 else keeps


def _as_rects(rect: Any) -> np.ndarray:
    """``[4]`` stays ``[4]`` (coordinates broadcast against boxes ``[N]``); ``[T, 4]`` becomes ``[T, 1, 4]``."""
    r = np.asarray(rect, dtype=np.float64)
    return r[:, None, :] if r.ndim == 2 else r


def _pixel_boxes(data: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The normalised boxes albumentations passes in ``data``, as pixel ``xyxy`` ``[N, 4]``."""
    boxes = np.asarray(data.get("bboxes", ()), dtype=np.float64)
    if boxes.size == 0:
        return np.empty((0, 4))
    return boxes[:, :4] * np.array([width, height, width, height], dtype=np.float64)


class SSDRandomCrop(DualTransform):
    """The SSD min-IoU random crop.

    Per image: choose ``min_iou`` uniformly from ``min_ious``. ``None`` keeps the image whole. Otherwise
    sample up to ``max_trials`` patches whose sides are ``min_scale`` .. 1 of the image's and whose
    height/width lies in ``aspect_ratio_range``; accept the first one for which
    :func:`crop_keeps_box_at_min_iou` holds. Boxes whose centres are inside the patch are kept (and are
    clipped to it by the pipeline); the others are dropped. If no trial succeeds the image is left uncropped.

    Images with no boxes are cropped freely: the first patch of a valid shape is accepted whatever
    ``min_iou`` was chosen (the constraint exists to keep an object in view, and there is none; a crop
    still gives background-only images the same scale variety as the others). ``None`` still means
    uncropped, so the no-crop rate is the same for every image.

    ``params`` after a call: ``crop_coords`` (pixel ``x0, y0, x1, y1`` of the input, or ``None`` when
    not cropped) and ``min_iou`` (the drawn mode).
    """

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES)

    class InitSchema(BaseTransformInitSchema):
        min_ious: tuple[Optional[float], ...]
        min_scale: float = Field(gt=0, le=1)
        aspect_ratio_range: tuple[float, float]
        max_trials: int = Field(ge=1)

        @field_validator("min_ious")
        @classmethod
        def _check_min_ious(cls, value: tuple[Optional[float], ...]) -> tuple[Optional[float], ...]:
            if not value or any(v is not None and not 0.0 <= v <= 1.0 for v in value):
                raise ValueError(f"min_ious must be a non-empty list of None or values in [0, 1], got {value}")
            return value

        @field_validator("aspect_ratio_range")
        @classmethod
        def _check_aspect(cls, value: tuple[float, float]) -> tuple[float, float]:
            if not 0 < value[0] <= value[1]:
                raise ValueError(f"aspect_ratio_range must be (low, high) with 0 < low <= high, got {value}")
            return value

    def __init__(
        self,
        min_ious: tuple[Optional[float], ...] = SSD_MIN_IOUS,
        min_scale: float = SSD_MIN_PATCH_SCALE,
        aspect_ratio_range: tuple[float, float] = SSD_PATCH_ASPECT_RANGE,
        max_trials: int = SSD_MAX_TRIALS,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.min_ious = tuple(min_ious)
        self.min_scale = min_scale
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_trials = max_trials

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_ious", "min_scale", "aspect_ratio_range", "max_trials")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        min_iou = self.py_random.choice(self.min_ious)
        if min_iou is None:
            return {"crop_coords": None, "min_iou": None}
        boxes = _pixel_boxes(data, height, width)
        # All trials are drawn at once and the first acceptable one is taken: the same choice as sampling
        # one at a time and stopping, at a fraction of the cost.
        rects, acceptable = self._sample_rects(height, width)
        if len(boxes):
            acceptable &= crop_keeps_box_at_min_iou(boxes, rects, min_iou)
        if not acceptable.any():
            return {"crop_coords": None, "min_iou": min_iou}
        first = int(np.argmax(acceptable))
        return {"crop_coords": tuple(int(v) for v in rects[first]), "min_iou": min_iou}

    def _sample_rects(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``max_trials`` candidate patches as in ssd.pytorch (sides uniform in ``min_scale`` .. 1 of the
        image's, position uniform, truncated to pixel edges) and whether each has an allowed shape."""
        u = self.random_generator.random((self.max_trials, 4))
        patch_w = width * (self.min_scale + (1.0 - self.min_scale) * u[:, 0])
        patch_h = height * (self.min_scale + (1.0 - self.min_scale) * u[:, 1])
        left = u[:, 2] * (width - patch_w)
        top = u[:, 3] * (height - patch_h)
        rects = np.stack([left, top, left + patch_w, top + patch_h], axis=1).astype(np.int64)  # floor: all >= 0
        low, high = self.aspect_ratio_range
        aspect = patch_h / patch_w
        allowed = (low <= aspect) & (aspect <= high) & (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])
        return rects, allowed

    def apply(self, img: np.ndarray, crop_coords: Optional[PixelRect], **params: Any) -> np.ndarray:
        if crop_coords is None:
            return img
        x0, y0, x1, y1 = crop_coords
        return img[y0:y1, x0:x1]

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords: Optional[PixelRect], **params: Any) -> np.ndarray:
        if crop_coords is None or len(bboxes) == 0:
            return bboxes
        height, width = params["shape"][:2]
        pixel = bboxes[:, :4] * np.array([width, height, width, height], dtype=np.float64)
        kept = bboxes[centres_inside(pixel, crop_coords)]
        return crop_bboxes_by_coords(kept, crop_coords, (height, width))


class SSDExpand(DualTransform):
    """SSD's zoom-out: put the image at a random place on a canvas ``ratio`` times larger, filled with ``fill``.

    ``ratio`` is uniform in ``[1, max_ratio]`` (the same for both sides), the offset uniform over the
    free space, both truncated to whole pixels as in ssd.pytorch. Boxes are shifted by the offset. Masks
    are filled with ``fill_mask``. ``params`` after a call: ``canvas_hw`` and ``offset_xy`` (pixels).
    """

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES)

    class InitSchema(BaseTransformInitSchema):
        max_ratio: float = Field(ge=1)
        fill: tuple[float, ...] | float
        fill_mask: float

    def __init__(
        self,
        max_ratio: float = SSD_EXPAND_MAX_RATIO,
        fill: tuple[float, ...] | float = 0.0,
        fill_mask: float = 0.0,
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.max_ratio = max_ratio
        self.fill = fill
        self.fill_mask = fill_mask

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_ratio", "fill", "fill_mask")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        ratio = self.py_random.uniform(1.0, self.max_ratio)
        canvas_h, canvas_w = int(height * ratio), int(width * ratio)
        left = int(self.py_random.uniform(0, canvas_w - width))
        top = int(self.py_random.uniform(0, canvas_h - height))
        return {"canvas_hw": (canvas_h, canvas_w), "offset_xy": (left, top)}

    def apply(
        self, img: np.ndarray, canvas_hw: tuple[int, int], offset_xy: tuple[int, int], **params: Any
    ) -> np.ndarray:
        return _place_on_canvas(img, canvas_hw, offset_xy, self.fill)

    def apply_to_mask(
        self, mask: np.ndarray, canvas_hw: tuple[int, int], offset_xy: tuple[int, int], **params: Any
    ) -> np.ndarray:
        return _place_on_canvas(mask, canvas_hw, offset_xy, self.fill_mask)

    def apply_to_bboxes(
        self, bboxes: np.ndarray, canvas_hw: tuple[int, int], offset_xy: tuple[int, int], **params: Any
    ) -> np.ndarray:
        if len(bboxes) == 0:
            return bboxes
        height, width = params["shape"][:2]
        (canvas_h, canvas_w), (left, top) = canvas_hw, offset_xy
        shifted = bboxes.astype(np.float64)
        shifted[:, [0, 2]] = (shifted[:, [0, 2]] * width + left) / canvas_w
        shifted[:, [1, 3]] = (shifted[:, [1, 3]] * height + top) / canvas_h
        return shifted.astype(bboxes.dtype)


def _place_on_canvas(
    img: np.ndarray, canvas_hw: tuple[int, int], offset_xy: tuple[int, int], fill: tuple[float, ...] | float
) -> np.ndarray:
    fill_values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    channels = 1 if img.ndim == 2 else img.shape[2]
    if fill_values.size != channels:
        fill_values = np.full(channels, fill_values.mean())  # one value for a grey image or a mask
    (canvas_h, canvas_w), (left, top) = canvas_hw, offset_xy
    borders = (top, canvas_h - top - img.shape[0], left, canvas_w - left - img.shape[1])
    if channels <= 4:  # OpenCV's border fill takes up to 4 values and is much faster than numpy broadcasting
        return cv2.copyMakeBorder(img, *borders, cv2.BORDER_CONSTANT, value=tuple(fill_values.tolist()))
    canvas = np.empty((canvas_h, canvas_w, channels), dtype=img.dtype)
    canvas[...] = fill_values.astype(img.dtype)
    canvas[top : top + img.shape[0], left : left + img.shape[1]] = img
    return canvas
