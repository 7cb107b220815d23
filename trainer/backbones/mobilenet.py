"""torchvision's MobileNet v2 / v3-large as SSDlite backbones, and MobileNet v2 with an FPN-lite neck.

The torchvision ``features`` Sequential is kept whole under its own name, so ImageNet ``features.*``
tensors load as they are. SSDlite (MobileNetV2 paper 6.3; torchvision's ``ssdlite320_mobilenet_v3_large``)
taps the expansion (first 1x1) output of the first stride-32 block, i.e. the C4 expansion at stride 16,
and the last layer at stride 32, then four depthwise-separable extra layers.
"""

from __future__ import annotations

from itertools import islice

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from trainer.backbones.common import (SSDLITE_NORM, DetectorBackbone, normal_init, run_extras,
                                      scaled_channels, separable_conv, ssdlite_extras)
from trainer.weights import PretrainedSource, load_pretrained

# MobileNet v2 FPN-lite (TF object detection's ssd_mobilenet_v2_fpnlite): C3..C5 at strides 8, 16, 32
V2_C3_END, V2_C4_END = 7, 14  # features[:7] ends at stride 8, features[:14] at stride 16
FPN_CHANNELS = 128  # TF's additional_layer_depth for FPN-lite, at width 1.0
FPN_EXTRA_LEVELS = 2  # P6 and P7 by stride-2 separable convs on P5 (levels 3..7)


def _last_stride32_block(features: nn.Sequential) -> int:
    """Index of the block that takes the features from stride 16 to 32 (torchvision marks strided
    blocks with ``_is_cn``)."""
    return max(index for index, block in enumerate(features) if getattr(block, "_is_cn", False))


def _block_layers(block: nn.Module) -> nn.Sequential:
    """The layer Sequential inside a torchvision inverted-residual block (v2: ``conv``, v3: ``block``)."""
    return block.conv if hasattr(block, "conv") else block.block


class MobileNetSSDLite(DetectorBackbone):
    def __init__(self, features: nn.Sequential, *, width_mult: float, torchvision_weights: str):
        super().__init__()
        self.features = features
        self.split_index = _last_stride32_block(features)
        split_block = features[self.split_index]
        if split_block.use_res_connect:
            raise ValueError("SSDlite split: the stride-32 block must not have a residual connection")
        expansion_channels = _block_layers(split_block)[0].out_channels
        self.extras = ssdlite_extras(features[-1].out_channels, width_mult)
        self.out_channels = [expansion_channels, features[-1].out_channels,
                             *(extra[-1].out_channels for extra in self.extras)]
        self.torchvision_weights = torchvision_weights

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for block in islice(self.features, self.split_index):
            x = block(x)
        split_layers = _block_layers(self.features[self.split_index])
        x = split_layers[0](x)
        maps = [x]
        for layer in islice(split_layers, 1, None):
            x = layer(x)
        for block in islice(self.features, self.split_index + 1, None):
            x = block(x)
        maps.append(x)
        return run_extras(x, self.extras, maps)

    def body_blocks(self) -> list[nn.Module]:
        return list(self.features)


class MobileNetV2FPNLite(DetectorBackbone):
    """C3..C5 of MobileNet v2, top-down merged (1x1 laterals, nearest upsampling, separable 3x3
    smoothing), plus ``FPN_EXTRA_LEVELS`` downsampled levels: maps at strides 8 .. 128."""

    torchvision_weights = "MobileNet_V2_Weights.IMAGENET1K_V1"

    def __init__(self, *, width_mult: float = 1.0):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult,
                                                        norm_layer=SSDLITE_NORM).features
        level_channels = [self.features[V2_C3_END - 1].out_channels,
                          self.features[V2_C4_END - 1].out_channels, self.features[-1].out_channels]
        fpn_channels = scaled_channels(FPN_CHANNELS, width_mult)
        self.laterals = nn.ModuleList(nn.Conv2d(c, fpn_channels, kernel_size=1) for c in level_channels)
        self.smoothing = nn.ModuleList(separable_conv(fpn_channels, fpn_channels)
                                       for _ in level_channels[:-1])
        self.downsampling = nn.ModuleList(separable_conv(fpn_channels, fpn_channels, stride=2)
                                          for _ in range(FPN_EXTRA_LEVELS))
        for module in (self.laterals, self.smoothing, self.downsampling):
            normal_init(module)
        self.out_channels = [fpn_channels] * (len(level_channels) + FPN_EXTRA_LEVELS)

    def _bottom_up(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for index, block in enumerate(self.features, start=1):
            x = block(x)
            if index in (V2_C3_END, V2_C4_END):
                levels.append(x)
        return [*levels, x]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self._bottom_up(x)
        top_down = self.laterals[-1](levels[-1])
        merged = [top_down]
        for level in reversed(range(len(levels) - 1)):
            lateral = self.laterals[level](levels[level])
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            merged.insert(0, self.smoothing[level](top_down))
        x = merged[-1]
        return run_extras(x, self.downsampling, merged)

    def body_blocks(self) -> list[nn.Module]:
        return list(self.features)


def build_mobilenet_v2(*, image_size: tuple[int, int] = (300, 300), width_mult: float = 1.0,
                       pretrained_path: PretrainedSource = None) -> MobileNetSSDLite:
    features = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult,
                                               norm_layer=SSDLITE_NORM).features
    backbone = MobileNetSSDLite(features, width_mult=width_mult,
                                torchvision_weights="MobileNet_V2_Weights.IMAGENET1K_V1")
    load_pretrained(backbone, pretrained_path)
    return backbone


def build_mobilenet_v2_fpn(*, image_size: tuple[int, int] = (320, 320), width_mult: float = 1.0,
                           pretrained_path: PretrainedSource = None) -> MobileNetV2FPNLite:
    backbone = MobileNetV2FPNLite(width_mult=width_mult)
    load_pretrained(backbone, pretrained_path)
    return backbone


def build_mobilenet_v3_large(*, image_size: tuple[int, int] = (320, 320), width_mult: float = 1.0,
                             pretrained_path: PretrainedSource = None,
                             reduced_tail: bool | None = None) -> MobileNetSSDLite:
    """``reduced_tail`` (torchvision's SSDlite halves the last stage's channels) defaults, as in
    torchvision, to True when training from scratch and False with pretrained weights, whose shapes
    are those of the full tail."""
    if reduced_tail is None:
        reduced_tail = pretrained_path is None
    features = torchvision.models.mobilenet_v3_large(weights=None, width_mult=width_mult,
                                                     reduced_tail=reduced_tail,
                                                     norm_layer=SSDLITE_NORM).features
    backbone = MobileNetSSDLite(features, width_mult=width_mult,
                                torchvision_weights="MobileNet_V3_Large_Weights.IMAGENET1K_V1")
    load_pretrained(backbone, pretrained_path)
    return backbone
