"""Pieces shared by the detection backbones: the base class, SSDlite's extra layers, initialisation."""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

# torchvision's ssdlite320_mobilenet_v3_large uses these BatchNorm settings for backbone, extras and head
SSDLITE_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
# SSDlite's four extra layers after the last backbone map, channels at width 1.0 (MobileNetV2 paper, 6.3)
SSDLITE_EXTRA_CHANNELS = (512, 256, 256, 128)
MIN_EXTRA_CHANNELS = 16  # torchvision's min_depth: thin widths never shrink an extra layer below this
HEAD_INIT_STD = 0.03  # torchvision's SSDlite normal init for new convs


class DetectorBackbone(nn.Module):
    """A feature extractor for SSD.

    ``forward(x) -> list[Tensor]``: the maps fed to the detector, finest first, extra layers included.
    ``out_channels``: one per map. ``body_blocks()``: the (pretrainable) body's blocks from input to
    output, for freezing by depth; extra layers are not part of the body. ``torchvision_weights``: the
    name of torchvision's ImageNet weights whose ``features.*`` tensors load onto the body, or None.
    """

    out_channels: list[int]
    torchvision_weights: str | None = None

    def body_blocks(self) -> list[nn.Module]:
        raise NotImplementedError


def scaled_channels(channels: int, width_mult: float, minimum: int = MIN_EXTRA_CHANNELS) -> int:
    return max(minimum, int(channels * width_mult))


def separable_conv(in_channels: int, out_channels: int, *, stride: int = 1,
                   norm_layer=SSDLITE_NORM, activation=nn.ReLU6) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with norm and activation."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, kernel_size=3, stride=stride, groups=in_channels,
                             norm_layer=norm_layer, activation_layer=activation),
        Conv2dNormActivation(in_channels, out_channels, kernel_size=1, norm_layer=norm_layer,
                             activation_layer=activation),
    )


def ssdlite_extra_block(in_channels: int, out_channels: int, norm_layer=SSDLITE_NORM) -> nn.Sequential:
    """SSDlite's extra layer: 1x1 to half the output, depthwise 3x3 stride 2, 1x1 to the output."""
    middle = out_channels // 2
    return nn.Sequential(
        Conv2dNormActivation(in_channels, middle, kernel_size=1, norm_layer=norm_layer,
                             activation_layer=nn.ReLU6),
        *separable_conv(middle, out_channels, stride=2, norm_layer=norm_layer),
    )


def ssdlite_extras(in_channels: int, width_mult: float,
                   channels: Sequence[int] = SSDLITE_EXTRA_CHANNELS) -> nn.ModuleList:
    extras = nn.ModuleList()
    for full_width in channels:
        out = scaled_channels(full_width, width_mult)
        extras.append(ssdlite_extra_block(in_channels, out))
        in_channels = out
    normal_init(extras)
    return extras


def normal_init(module: nn.Module, std: float = HEAD_INIT_STD) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, mean=0.0, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def xavier_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def run_extras(x: torch.Tensor, extras: nn.ModuleList, maps: list[torch.Tensor]) -> list[torch.Tensor]:
    for extra in extras:
        x = extra(x)
        maps.append(x)
    return maps
