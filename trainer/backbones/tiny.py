"""A small plain conv net for tiny inputs (32..128 px, e.g. MNIST-detection): a stride-2 stem, then
stages of (3x3 stride 2, 3x3) conv-BN-ReLU; the last ``num_feature_maps`` stages feed the detector
(strides 4, 8, 16, 32 with all four). Trains from scratch in minutes on a CPU."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from trainer.backbones.common import DetectorBackbone
from trainer.weights import PretrainedSource, load_pretrained

STEM_CHANNELS = 16
STAGE_CHANNELS = (32, 64, 128, 128)  # at width 1.0; output strides 4, 8, 16, 32
FEATURE_MAP_CHOICES = (3, 4)
MIN_CHANNELS = 8


class TinyBackbone(DetectorBackbone):
    def __init__(self, *, width_mult: float = 1.0, num_feature_maps: int = 4):
        super().__init__()
        if num_feature_maps not in FEATURE_MAP_CHOICES:
            raise ValueError(f"backbone tiny: num_feature_maps must be one of {FEATURE_MAP_CHOICES}, "
                             f"got {num_feature_maps}")
        if width_mult <= 0:
            raise ValueError(f"backbone tiny: width_mult must be positive, got {width_mult}")
        in_channels = max(MIN_CHANNELS, int(STEM_CHANNELS * width_mult))
        self.stem = Conv2dNormActivation(3, in_channels, kernel_size=3, stride=2)
        stages = []
        for full_width in STAGE_CHANNELS:
            out = max(MIN_CHANNELS, int(full_width * width_mult))
            stages.append(nn.Sequential(Conv2dNormActivation(in_channels, out, kernel_size=3, stride=2),
                                        Conv2dNormActivation(out, out, kernel_size=3)))
            in_channels = out
        self.stages = nn.ModuleList(stages)
        self.first_tap = len(stages) - num_feature_maps
        self.out_channels = [stage[-1].out_channels for stage in stages[self.first_tap:]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= self.first_tap:
                maps.append(x)
        return maps

    def body_blocks(self) -> list[nn.Module]:
        return [self.stem, *self.stages]


def build_tiny(*, image_size: tuple[int, int] = (64, 64), width_mult: float = 1.0,
               pretrained_path: PretrainedSource = None,
               num_feature_maps: int = 4) -> TinyBackbone:
    backbone = TinyBackbone(width_mult=width_mult, num_feature_maps=num_feature_maps)
    load_pretrained(backbone, pretrained_path)
    return backbone
