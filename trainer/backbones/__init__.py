"""Detection backbones for SSD, by name.

``BACKBONES[name](image_size=(H, W), width_mult=..., pretrained_path=None)`` returns a
:class:`~trainer.backbones.common.DetectorBackbone`: ``forward(x) -> list[Tensor]`` (extra layers
included, finest map first) and ``out_channels``. ``pretrained_path`` is a local state-dict file or
``"imagenet"`` (torchvision's weights, see :mod:`trainer.weights`). ``DEFAULT_IMAGE_SIZES`` gives each
backbone's usual input side.
"""

from __future__ import annotations

from typing import Callable

from trainer.backbones.common import DetectorBackbone
from trainer.backbones.mobilenet import (build_mobilenet_v2, build_mobilenet_v2_fpn,
                                         build_mobilenet_v3_large)
from trainer.backbones.mobilenet_v1 import build_mobilenet_v1
from trainer.backbones.tiny import build_tiny
from trainer.backbones.vgg import build_vgg16

BACKBONES: dict[str, Callable[..., DetectorBackbone]] = {
    "vgg16": build_vgg16,
    "mobilenet_v1": build_mobilenet_v1,
    "mobilenet_v2": build_mobilenet_v2,
    "mobilenet_v2_fpn": build_mobilenet_v2_fpn,
    "mobilenet_v3_large": build_mobilenet_v3_large,
    "tiny": build_tiny,
}

# input side (px) each backbone is usually trained at: SSD300, MobileNet-SSD 300, SSDlite 320, tiny 64
DEFAULT_IMAGE_SIZES = {
    "vgg16": 300,
    "mobilenet_v1": 300,
    "mobilenet_v2": 300,
    "mobilenet_v2_fpn": 320,
    "mobilenet_v3_large": 320,
    "tiny": 64,
}

__all__ = ["BACKBONES", "DEFAULT_IMAGE_SIZES", "DetectorBackbone"]
