"""VGG16 with the SSD paper's changes (Liu et al. 2016, section 3 and Fig. 2).

torchvision's ``vgg16().features`` keeps its module names (so ImageNet ``features.*`` tensors load as
they are), with pool3 in ceil mode (75 -> 38 at 300 px), pool5 made 3x3 stride 1, fc6/fc7 as a dilated
3x3 conv and a 1x1 conv, and conv4_3 L2-normalised with a learned per-channel scale. The extra layers
follow the original Caffe SSD300 / SSD512 (torchvision's SSD512 extras differ: their last maps are
6, 4, 1; these are 4, 2, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from trainer.backbones.common import DetectorBackbone, xavier_init
from trainer.weights import PretrainedSource, load_pretrained

SSD512_MIN_SIDE = 512  # from this input side up, SSD512's extra layers (7 maps) instead of SSD300's (6)
L2NORM_INIT_SCALE = 20.0  # ParseNet / SSD: conv4_3 features are rescaled to this after L2 normalisation
L2NORM_EPS = 1e-10
POOL3, CONV4_3_RELU, POOL5 = 16, 22, 30  # indices in torchvision's vgg16().features
STAGE_ENDS = (5, 10, 17, 24, 31)  # the five conv stages end after each max-pool
FC_CHANNELS = 1024
FC6_DILATION = 6  # atrous fc6 keeps the receptive field after pool5 stops subsampling

# extra layers: (1x1 channels, 3x3 output channels, kernel, stride, padding), Caffe SSD prototxts
SSD300_EXTRAS = ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0), (128, 256, 3, 1, 0))
SSD512_EXTRAS = ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1),
                 (128, 256, 4, 1, 1))


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned scale per channel."""

    def __init__(self, channels: int, initial_scale: float = L2NORM_INIT_SCALE):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), initial_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1, eps=L2NORM_EPS) * self.weight.view(1, -1, 1, 1)


def kaiming_init(features: nn.Sequential) -> None:
    """torchvision VGG's initialisation of its convs."""
    for layer in features.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def _extra_layer(in_channels: int, middle: int, out: int, kernel: int, stride: int,
                 padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, middle, kernel_size=1), nn.ReLU(inplace=True),
                         nn.Conv2d(middle, out, kernel_size=kernel, stride=stride, padding=padding),
                         nn.ReLU(inplace=True))


class VGG16Backbone(DetectorBackbone):
    torchvision_weights = "VGG16_Weights.IMAGENET1K_FEATURES"  # the Caffe-converted weights SSD uses

    def __init__(self, *, highres: bool):
        super().__init__()
        # vgg16().features without building (and initialising) the 100M-parameter classifier we drop
        features = make_layers(cfgs["D"], batch_norm=False)
        kaiming_init(features)
        features[POOL3].ceil_mode = True
        features[POOL5] = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.features = features
        self.conv4_3_norm = L2Norm(features[CONV4_3_RELU - 1].out_channels)
        self.fc = nn.Sequential(
            nn.Conv2d(512, FC_CHANNELS, kernel_size=3, padding=FC6_DILATION, dilation=FC6_DILATION),
            nn.ReLU(inplace=True),
            nn.Conv2d(FC_CHANNELS, FC_CHANNELS, kernel_size=1),
            nn.ReLU(inplace=True),
        )
        extras_spec = SSD512_EXTRAS if highres else SSD300_EXTRAS
        layers, in_channels = [], FC_CHANNELS
        for middle, out, kernel, stride, padding in extras_spec:
            layers.append(_extra_layer(in_channels, middle, out, kernel, stride, padding))
            in_channels = out
        self.extras = nn.ModuleList(layers)
        xavier_init(self.fc)
        xavier_init(self.extras)
        self.out_channels = [self.conv4_3_norm.weight.numel(), FC_CHANNELS, *(s[1] for s in extras_spec)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == CONV4_3_RELU:
                maps.append(self.conv4_3_norm(x))
        x = self.fc(x)
        maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps

    def body_blocks(self) -> list[nn.Module]:
        starts = (0, *STAGE_ENDS[:-1])
        return [self.features[start:end] for start, end in zip(starts, STAGE_ENDS)]


def build_vgg16(*, image_size: tuple[int, int] = (300, 300), width_mult: float = 1.0,
                pretrained_path: PretrainedSource = None) -> VGG16Backbone:
    """SSD300's extras below ``SSD512_MIN_SIDE`` px (shorter side), SSD512's from there up."""
    if width_mult != 1.0:
        raise ValueError(f"backbone vgg16 has no width multiplier (got width_mult={width_mult}); "
                         "use mobilenet_v1/v2/v3 for thinner models")
    backbone = VGG16Backbone(highres=min(image_size) >= SSD512_MIN_SIDE)
    load_pretrained(backbone, pretrained_path)
    return backbone
