"""Augmentation pipelines for the SSD trainer (albumentations 2.0.8).

``build_augmentation(preset, size=(H, W), ...)`` returns an ``albumentations.Compose`` called as
``pipeline(image=uint8 HxWx3 RGB, bboxes=[[x0, y0, x1, y1], ...], labels=[...])``. Boxes are absolute
pixel-edge ``xyxy`` (the trainer's convention, ``pascal_voc`` to albumentations) on the way in and out; the
output image is ``H x W``. Pass ``labels`` as an int64 array to get int64 back (a list comes back as floats),
and note that albumentations returns an empty list, not an empty array, when no box survives.

Presets:

* ``none``: resize only (the no-augmentation ablation).
* ``light``: horizontal flip, mild colour jitter, resize.
* ``ssd``: the SSD paper's pipeline in ssd.pytorch's order: photometric distortion (brightness, contrast,
  saturation, hue, channel swap, each with its own probability), expand / zoom-out with mean fill, the
  min-IoU random crop, horizontal flip, resize. ssd.pytorch applies contrast before or after the HSV steps
  at random; here it always comes first (a pure gain commutes with saturation and hue up to clipping).

Resize: ``stretch`` (plain resize to ``H x W``, SSD's choice) or ``letterbox`` (keep the aspect ratio, pad
with ``mean`` around the centred image).

Boxes: clipped to the image on input (boxes with no area inside it are dropped); after every transform
albumentations clips them again and drops those thinner than ``min_box_side_px`` or with less than
``min_visibility`` of their area left, together with their labels.

Seeding: albumentations 2.0.8's ``Compose(seed=s)`` gives *every* transform its own generator seeded with the
same ``s``; transforms that draw the same way then make identical draws, e.g. two ``p=0.5`` transforms are
applied together or not at all. :func:`seed_augmentation` instead shares one generator seeded with ``s``
across the pipeline. Call it again in each DataLoader worker with a per-worker seed, or every worker
repeats the same augmentations.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import random
from dataclasses import dataclass
from typing import Any, Optional

import albumentations as A
import cv2
import numpy as np

from trainer.ssd_transforms import (
    SSD_EXPAND_MAX_RATIO,
    SSD_MAX_TRIALS,
    SSD_MIN_IOUS,
    SSD_MIN_PATCH_SCALE,
    SSD_PATCH_ASPECT_RANGE,
    SSDExpand,
    SSDRandomCrop,
)

log = logging.getLogger(__name__)

PRESETS = ("none", "light", "ssd")
RESIZE_MODES = ("stretch", "letterbox")
IMAGENET_MEAN_RGB = (123, 117, 104)  # pixel levels; the fill of expand and letterbox: ~0 after mean subtraction
RESIZE_INTERPOLATION = cv2.INTER_LINEAR  # as ssd.pytorch's cv2.resize
UINT8_MAX = 255.0
HUE_DEGREES_PER_TURN = 360.0


@dataclass(frozen=True)
class AugmentationSettings:
    """Every probability and range the presets use; ``build_augmentation(**overrides)`` replaces fields.

    Defaults for ``ssd`` are the SSD reference implementations' (Caffe ``ssd_pascal.py`` / ssd.pytorch).
    """

    # -- ssd: photometric distortion
    brightness_p: float = 0.5
    brightness_delta: float = 32.0  # pixel levels added, uniform in [-delta, delta]
    contrast_p: float = 0.5
    contrast_range: tuple[float, float] = (0.5, 1.5)  # gain multiplying every pixel
    saturation_p: float = 0.5
    saturation_range: tuple[float, float] = (0.5, 1.5)  # saturation factor (blend with the grey image)
    hue_p: float = 0.5
    hue_delta_deg: float = 18.0  # hue shift in degrees, uniform in [-delta, delta] (ssd.pytorch)
    channel_swap_p: float = 0.5  # random permutation of R, G, B (ssd.pytorch's "lighting noise")
    # -- ssd: geometry
    expand_p: float = 0.5
    expand_max_ratio: float = SSD_EXPAND_MAX_RATIO  # canvas side / image side, uniform in [1, max]
    crop_min_ious: tuple[Optional[float], ...] = SSD_MIN_IOUS  # None: keep the image uncropped
    crop_min_scale: float = SSD_MIN_PATCH_SCALE  # patch side / image side, uniform in [min, 1]
    crop_aspect_range: tuple[float, float] = SSD_PATCH_ASPECT_RANGE  # patch height / width
    crop_max_trials: int = SSD_MAX_TRIALS
    # -- ssd and light
    flip_p: float = 0.5  # horizontal flip; logos with text are not mirror-symmetric: recipes may lower it
    # -- light: one ColorJitter, mild enough that colour-coded logos keep their colours
    light_colour_p: float = 0.5
    light_brightness: float = 0.2  # factor uniform in [1 - x, 1 + x]
    light_contrast: float = 0.2
    light_saturation: float = 0.2
    light_hue: float = 0.02  # fraction of the hue circle (7.2 degrees)
    # -- every preset: box cleaning after each transform
    min_box_side_px: float = 1.0  # a box thinner than one pixel shows nothing to learn from
    min_visibility: float = 0.0  # SSD keeps any box whose centre stays in the crop, however cut

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation: {field.name} must be a probability in [0, 1], got {value}")
        if self.expand_max_ratio < 1.0:
            raise ValueError(f"augmentation: expand_max_ratio must be >= 1, got {self.expand_max_ratio}")
        if not 0.0 <= self.min_visibility <= 1.0 or self.min_box_side_px < 0:
            raise ValueError("augmentation: min_visibility must be in [0, 1] and min_box_side_px >= 0")


_BOX_CLEANING = frozenset({"min_box_side_px", "min_visibility"})
_SETTINGS_USED_BY = {
    "none": _BOX_CLEANING,
    "light": _BOX_CLEANING | {"flip_p"} | {f.name for f in dataclasses.fields(AugmentationSettings)
                                            if f.name.startswith("light_")},
    "ssd": frozenset(f.name for f in dataclasses.fields(AugmentationSettings) if not f.name.startswith("light_")),
}


def build_augmentation(
    preset: str,
    *,
    size: tuple[int, int],
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB,
    seed: Optional[int] = None,
    resize_mode: str = "stretch",
    **overrides: Any,
) -> A.Compose:
    """The ``preset`` pipeline producing ``size = (H, W)`` images; ``overrides`` replace
    :class:`AugmentationSettings` fields (``flip_p=0.0``, ``crop_min_ious=(0.3, 0.5)``, ...).

    Raises ``ValueError`` for an unknown preset, resize mode or setting (with a "did you mean"), or an
    out-of-range value. A known setting the preset does not use is logged as a warning.
    """
    _check_choice("preset", preset, PRESETS)
    _check_choice("resize_mode", resize_mode, RESIZE_MODES)
    height, width = size
    if height < 1 or width < 1 or int(height) != height or int(width) != width:
        raise ValueError(f"augmentation: size must be (height, width) in whole pixels >= 1, got {size}")
    settings = make_settings(preset, **overrides)
    steps: list[A.BasicTransform] = []
    if preset == "light":
        steps += _light_steps(settings)
    elif preset == "ssd":
        steps += _ssd_photometric_steps(settings) + _ssd_geometric_steps(settings, mean)
    steps += _resize_steps(height, width, mean, resize_mode)
    bbox_params = A.BboxParams(
        format="pascal_voc",
        label_fields=["labels"],
        min_width=settings.min_box_side_px,
        min_height=settings.min_box_side_px,
        min_visibility=settings.min_visibility,
        clip=True,
        filter_invalid_bboxes=True,
    )
    pipeline = A.Compose(steps, bbox_params=bbox_params)
    if seed is not None:
        seed_augmentation(pipeline, seed)
    return pipeline


def make_settings(preset: str, **overrides: Any) -> AugmentationSettings:
    """Defaults with ``overrides`` applied; unknown names raise ``ValueError`` with a suggestion."""
    known = [f.name for f in dataclasses.fields(AugmentationSettings)]
    for name in overrides:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(known)}"
            raise ValueError(f"augmentation: unknown setting {name!r}{hint}")
    unused = sorted(set(overrides) - _SETTINGS_USED_BY.get(preset, frozenset()))
    if unused:
        log.warning("augmentation preset %r does not use %s; ignored", preset, ", ".join(unused))
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # YAML gives lists
    return dataclasses.replace(AugmentationSettings(), **tuples)


def seed_augmentation(pipeline: A.Compose, seed: int) -> None:
    """Make ``pipeline`` reproducible from ``seed`` with one random stream shared by all its transforms."""
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    pipeline.seed = seed  # recorded for describe_augmentation; set_random_state does not keep it


def describe_augmentation(pipeline: A.Compose) -> dict[str, Any]:
    """A JSON-ready record of ``pipeline`` for a run's artifacts: the seed, one line per step, and
    ``albumentations.to_dict`` output (``albumentations.from_dict`` rebuilds it once trainer.augment is imported).
    """
    return {
        "albumentations_version": A.__version__,
        "seed": getattr(pipeline, "seed", None),
        "steps": [_describe_step(step) for step in pipeline.transforms],
        "serialized": A.to_dict(pipeline),
    }


def _describe_step(step: Any) -> dict[str, Any]:
    if isinstance(step, A.BaseCompose):
        return {"name": type(step).__name__, "p": step.p, "steps": [_describe_step(s) for s in step.transforms]}
    return {"name": type(step).__name__, "p": step.p, **step.get_transform_init_args()}


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"augmentation: unknown {what} {value!r} (choose from {', '.join(choices)}){hint}")


def _light_steps(s: AugmentationSettings) -> list[A.BasicTransform]:
    return [
        A.HorizontalFlip(p=s.flip_p),
        A.ColorJitter(brightness=s.light_brightness, contrast=s.light_contrast, saturation=s.light_saturation,
                      hue=s.light_hue, p=s.light_colour_p),
    ]


def _ssd_photometric_steps(s: AugmentationSettings) -> list[A.BasicTransform]:
    # RandomBrightnessContrast computes img * (1 + contrast) + brightness * 255: with one of the two at zero
    # it is exactly SSD's additive brightness or multiplicative contrast. ColorJitter with the other factors
    # at identity gives saturation or hue alone.
    identity = (1.0, 1.0)
    low_gain, high_gain = s.contrast_range
    return [
        A.RandomBrightnessContrast(brightness_limit=s.brightness_delta / UINT8_MAX, contrast_limit=0.0,
                                   p=s.brightness_p),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=(low_gain - 1.0, high_gain - 1.0),
                                   p=s.contrast_p),
        A.ColorJitter(brightness=identity, contrast=identity, saturation=tuple(s.saturation_range),
                      hue=(0.0, 0.0), p=s.saturation_p),
        A.ColorJitter(brightness=identity, contrast=identity, saturation=identity,
                      hue=s.hue_delta_deg / HUE_DEGREES_PER_TURN, p=s.hue_p),
        A.ChannelShuffle(p=s.channel_swap_p),
    ]


def _ssd_geometric_steps(s: AugmentationSettings, mean: tuple[float, float, float]) -> list[A.BasicTransform]:
    return [
        SSDExpand(max_ratio=s.expand_max_ratio, fill=tuple(mean), p=s.expand_p),
        SSDRandomCrop(min_ious=s.crop_min_ious, min_scale=s.crop_min_scale,
                      aspect_ratio_range=s.crop_aspect_range, max_trials=s.crop_max_trials, p=1.0),
        A.HorizontalFlip(p=s.flip_p),
    ]


def _resize_steps(height: int, width: int, mean: tuple[float, float, float], mode: str) -> list[A.BasicTransform]:
    if mode == "stretch":
        return [A.Resize(height, width, interpolation=RESIZE_INTERPOLATION)]
    return [
        A.LongestMaxSize(max_size_hw=(height, width), interpolation=RESIZE_INTERPOLATION),
        A.PadIfNeeded(min_height=height, min_width=width, position="center", border_mode=cv2.BORDER_CONSTANT,
                      fill=tuple(mean), fill_mask=0),
    ]
