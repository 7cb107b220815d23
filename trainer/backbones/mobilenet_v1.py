"""MobileNet v1 (Howard et al. 2017) with a width multiplier, as an SSD backbone (torchvision has none).

Module names follow RetinaFace's MobileNetV1 (biubug6/Pytorch_Retinaface ``models/net.py``) so its ImageNet
checkpoint ``mobilenetV1X0.25_pretrain.tar`` loads by name at ``width_mult=0.25``: three stages,
``stageN.i`` a layer, inside it ``0`` conv / ``1`` BN for the first (full) conv and ``0`` depthwise conv,
``1`` BN, ``3`` pointwise conv, ``4`` BN for the depthwise-separable ones. The detector taps the ends of
stage 2 (stride 16, conv11 in MobileNet-SSD) and stage 3 (stride 32, conv13), then four SSDlite extras.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from trainer.backbones.common import DetectorBackbone, run_extras, ssdlite_extras
from trainer.weights import PretrainedSource, load_pretrained

WIDTH_RANGE = (0.25, 1.0)  # the widths the MobileNet paper and the seeds compare
MIN_CHANNELS = 8
# The RetinaFace ImageNet checkpoint was trained with LeakyReLU(0.1); ReLU would shift its activations
LEAKY_SLOPE = 0.1
# (output channels at width 1.0, stride) per layer; the first layer of stage1 is a full 3x3 conv
STAGES = {
    "stage1": ((32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)),
    "stage2": ((512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1)),
    "stage3": ((1024, 2), (1024, 1)),
}


def _depthwise_separable(in_channels: int, out_channels: int, stride: int, activation) -> nn.Sequential:
    """One flat Sequential (dw conv, BN, act, pw conv, BN, act): RetinaFace's ``conv_dw`` layout."""
    depthwise = Conv2dNormActivation(in_channels, in_channels, kernel_size=3, stride=stride,
                                     groups=in_channels, activation_layer=activation)
    pointwise = Conv2dNormActivation(in_channels, out_channels, kernel_size=1, activation_layer=activation)
    return nn.Sequential(*depthwise, *pointwise)


class MobileNetV1Backbone(DetectorBackbone):
    def __init__(self, *, width_mult: float = 1.0, leaky_slope: float = LEAKY_SLOPE):
        super().__init__()
        low, high = WIDTH_RANGE
        if not low <= width_mult <= high:
            raise ValueError(f"backbone mobilenet_v1: width_mult must be within {low}..{high}, "
                             f"got {width_mult}")
        activation = partial(nn.LeakyReLU, negative_slope=leaky_slope)
        in_channels = 3
        stage_out_channels = []
        for stage_name, layers in STAGES.items():
            modules = []
            for full_width, stride in layers:
                out = max(MIN_CHANNELS, int(full_width * width_mult))
                is_stem = stage_name == "stage1" and not modules
                modules.append(Conv2dNormActivation(in_channels, out, kernel_size=3, stride=stride,
                                                    activation_layer=activation)
                               if is_stem else _depthwise_separable(in_channels, out, stride, activation))
                in_channels = out
            setattr(self, stage_name, nn.Sequential(*modules))
            stage_out_channels.append(in_channels)
        self.extras = ssdlite_extras(in_channels, width_mult)
        self.out_channels = [*stage_out_channels[1:], *(extra[-1].out_channels for extra in self.extras)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage2(self.stage1(x))
        maps = [x]
        x = self.stage3(x)
        maps.append(x)
        return run_extras(x, self.extras, maps)

    def body_blocks(self) -> list[nn.Module]:
        return [*self.stage1, *self.stage2, *self.stage3]


def build_mobilenet_v1(*, image_size: tuple[int, int] = (300, 300), width_mult: float = 1.0,
                       pretrained_path: PretrainedSource = None) -> MobileNetV1Backbone:
    backbone = MobileNetV1Backbone(width_mult=width_mult)
    load_pretrained(backbone, pretrained_path)
    return backbone
