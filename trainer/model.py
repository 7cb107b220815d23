"""One SSD for every backbone and anchor spec (docs/trainer.md).

The backbone gives feature maps; their sizes come from a dry-run forward at ``image_size``; the default
boxes come from those sizes and the :class:`~trainer.priors.AnchorSpec`; the head's channels come from
the default boxes' per-layer counts. Nothing about the head is configured separately, so a fitted
anchor spec changes the head by itself. Output layout matches the default boxes (see trainer/priors.py).
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Sequence

import torch
from torch import nn
from torchvision.ops import batched_nms, box_convert
from torchvision.ops.misc import Conv2dNormActivation

from trainer.backbones import BACKBONES, DetectorBackbone
from trainer.backbones.common import SSDLITE_NORM, normal_init, xavier_init
from trainer.box_coder import DEFAULT_VARIANCES, decode
from trainer.priors import AnchorSpec, DefaultBoxes
from trainer.weights import PretrainedSource

BOX_COORDINATES = 4
PRE_NMS_CANDIDATES_PER_CLASS = 400  # torchvision SSD's topk_candidates: best boxes per class before NMS

# Caffe SSD300 / SSD512 (Liu et al.): min/max box sizes in px over the input side, and centre strides in
# px; the strides only hold at exactly the side they were designed for
SSD300_SIDE, SSD512_SIDE = 300, 512
SSD300_ANCHORS = AnchorSpec(scales=tuple(s / SSD300_SIDE for s in (30, 60, 111, 162, 213, 264, 315)),
                            aspect_ratios=AnchorSpec.ssd_paper(num_layers=6).aspect_ratios)
SSD300_STEPS = (8, 16, 32, 64, 100, 300)
SSD512_ANCHORS = AnchorSpec(scales=tuple(s / SSD512_SIDE for s in (35.84, 76.8, 153.6, 230.4, 307.2, 384.0,
                                                                   460.8, 537.6)),
                            aspect_ratios=AnchorSpec.ssd_paper(num_layers=7).aspect_ratios)
SSD512_STEPS = (8, 16, 32, 64, 128, 256, 512)
# torchvision's ssdlite320: scales linear from 0.2 to 0.95, then 1.0 for the last extra square; ratios 2, 3
SSDLITE_SCALE_RANGE = (0.2, 0.95)
SSDLITE_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
LITE_BACKBONES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v2_fpn", "mobilenet_v3_large")


def ssdlite_anchor_spec(num_layers: int) -> AnchorSpec:
    low, high = SSDLITE_SCALE_RANGE
    scales = [low + (high - low) * k / max(num_layers - 1, 1) for k in range(num_layers)] + [1.0]
    return AnchorSpec(scales=tuple(round(s, 6) for s in scales), aspect_ratios=(SSDLITE_RATIOS,) * num_layers)


def _ssd_predictor(in_channels: int, out_channels: int) -> nn.Module:
    predictor = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    xavier_init(predictor)
    return predictor


def _ssdlite_predictor(in_channels: int, out_channels: int) -> nn.Module:
    """Depthwise 3x3 (BN, ReLU6), then a pointwise 1x1 to the outputs (torchvision's SSDlite head)."""
    predictor = nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, kernel_size=3, groups=in_channels,
                             norm_layer=SSDLITE_NORM, activation_layer=nn.ReLU6),
        nn.Conv2d(in_channels, out_channels, kernel_size=1))
    normal_init(predictor)
    return predictor


PREDICTORS = {"ssd": _ssd_predictor, "ssdlite": _ssdlite_predictor}
HEADS = tuple(PREDICTORS)


def feature_map_sizes(backbone: DetectorBackbone, image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes of the backbone's maps for one ``image_size`` input: a no-grad forward in eval mode (so
    BatchNorm statistics are untouched), the training mode restored afterwards."""
    was_training = backbone.training
    device = next(backbone.parameters()).device
    backbone.eval()
    try:
        with torch.no_grad():
            maps = backbone(torch.zeros(1, 3, *image_size, device=device))
    except RuntimeError as error:
        raise ValueError(f"backbone {type(backbone).__name__} cannot take {image_size[0]}x{image_size[1]} "
                         f"inputs (a map shrinks below its kernel?): {error}") from error
    finally:
        backbone.train(was_training)
    channels = [m.shape[1] for m in maps]
    if channels != list(backbone.out_channels):
        raise ValueError(f"backbone {type(backbone).__name__} declares out_channels "
                         f"{backbone.out_channels} but its maps have {channels}")
    return [tuple(m.shape[-2:]) for m in maps]


class SSD(nn.Module):
    def __init__(self, *, backbone: DetectorBackbone, num_classes: int, anchor_spec: AnchorSpec,
                 image_size: tuple[int, int], head: str = "ssd", anchor_steps: Sequence[float] | None = None,
                 variances: Sequence[float] = DEFAULT_VARIANCES):
        """``num_classes`` counts background (C + 1); ``anchor_steps`` (px) default to input / map size."""
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SSD: num_classes counts background, so it must be >= 2, got {num_classes}")
        if head not in PREDICTORS:
            raise ValueError(f"SSD: head must be one of {HEADS}, got {head!r}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.variances = tuple(variances)
        self.default_boxes = DefaultBoxes(spec=anchor_spec, image_size=self.image_size,
                                          feature_map_sizes=feature_map_sizes(backbone, self.image_size),
                                          steps=anchor_steps)
        self.register_buffer("priors_cxcywh", self.default_boxes.cxcywh.clone(), persistent=False)
        predictor = PREDICTORS[head]
        per_location = self.default_boxes.boxes_per_location()
        self.classification_heads = nn.ModuleList(
            predictor(c, boxes * num_classes) for c, boxes in zip(backbone.out_channels, per_location))
        self.regression_heads = nn.ModuleList(
            predictor(c, boxes * BOX_COORDINATES) for c, boxes in zip(backbone.out_channels, per_location))

    def head_channels(self) -> list[tuple[int, int]]:
        """(classification, regression) output channels of each layer's predictor, as built."""
        def last_conv_channels(module: nn.Module) -> int:
            return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
        return [(last_conv_channels(c), last_conv_channels(r))
                for c, r in zip(self.classification_heads, self.regression_heads)]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"SSD: built for {self.image_size[0]}x{self.image_size[1]} inputs (its default "
                             f"boxes are), got {images.shape[-2]}x{images.shape[-1]}; resize the images")
        maps = self.backbone(images)
        cls_logits = [self._flatten(head(feature_map), self.num_classes)
                      for head, feature_map in zip(self.classification_heads, maps)]
        loc = [self._flatten(head(feature_map), BOX_COORDINATES)
               for head, feature_map in zip(self.regression_heads, maps)]
        return torch.cat(cls_logits, dim=1), torch.cat(loc, dim=1)

    @staticmethod
    def _flatten(output: torch.Tensor, values_per_box: int) -> torch.Tensor:
        """``[B, A * K, H, W]`` -> ``[B, H * W * A, K]``: location-major, box type next, as the priors."""
        return output.permute(0, 2, 3, 1).reshape(output.shape[0], -1, values_per_box)

    @torch.no_grad()
    def postprocess(self, cls_logits: torch.Tensor, loc: torch.Tensor, score_threshold: float = 0.01,
                    nms_iou: float = 0.45, top_k: int = 200, *,
                    candidates_per_class: int = PRE_NMS_CANDIDATES_PER_CLASS,
                    ) -> list[dict[str, torch.Tensor]]:
        """Per image ``dict(boxes=[K, 4] relative xyxy in [0, 1], scores=[K], labels=[K] in 1..C)``,
        K <= top_k, by decreasing score: softmax, per class the best ``candidates_per_class`` boxes above
        ``score_threshold``, then class-wise NMS (``batched_nms``)."""
        boxes = box_convert(decode(loc, self.priors_cxcywh, self.variances), "cxcywh", "xyxy").clamp(0.0, 1.0)
        class_scores = cls_logits.softmax(dim=-1)[..., 1:]  # background dropped: column c is label c + 1
        return [self._detections(image_boxes, image_scores, score_threshold, nms_iou, top_k,
                                 candidates_per_class)
                for image_boxes, image_scores in zip(boxes, class_scores)]

    @staticmethod
    def _detections(boxes: torch.Tensor, class_scores: torch.Tensor, score_threshold: float,
                    nms_iou: float, top_k: int, candidates_per_class: int) -> dict[str, torch.Tensor]:
        candidates = min(candidates_per_class, boxes.shape[0])
        top_scores, top_index = class_scores.topk(candidates, dim=0)  # [candidates, C]
        labels = torch.arange(1, class_scores.shape[1] + 1, device=boxes.device).expand_as(top_scores)
        above = top_scores > score_threshold
        scores, labels, boxes = top_scores[above], labels[above], boxes[top_index[above]]
        kept = batched_nms(boxes, scores, labels, nms_iou)[:top_k]
        return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}


def default_anchors(backbone_name: str, image_size: tuple[int, int],
                    num_layers: int) -> tuple[AnchorSpec, tuple[int, ...] | None]:
    """(anchor spec, steps) a backbone starts from: Caffe SSD300/SSD512 (their strides only at exactly
    300/512 px), SSDlite's for the MobileNets, the SSD paper's rule for the others."""
    if backbone_name == "vgg16":
        spec, steps, side = ((SSD512_ANCHORS, SSD512_STEPS, SSD512_SIDE)
                             if num_layers == SSD512_ANCHORS.num_layers
                             else (SSD300_ANCHORS, SSD300_STEPS, SSD300_SIDE))
        return spec, steps if image_size == (side, side) else None
    if backbone_name in LITE_BACKBONES:
        return ssdlite_anchor_spec(num_layers), None
    return AnchorSpec.ssd_paper(num_layers=num_layers), None


def build_ssd(backbone_name: str, *, num_classes: int, image_size: int | tuple[int, int],
              anchor_spec: AnchorSpec | None = None, width_mult: float = 1.0, head: str | None = None,
              pretrained_path: PretrainedSource = None) -> SSD:
    """An SSD with each backbone's usual anchors and head (``ssdlite`` for the MobileNets, ``ssd``
    otherwise). ``pretrained_path``: a local state-dict file or ``"imagenet"`` (trainer.weights)."""
    if backbone_name not in BACKBONES:
        close = get_close_matches(backbone_name, BACKBONES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown backbone {backbone_name!r} (known: {', '.join(BACKBONES)}){hint}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    backbone = BACKBONES[backbone_name](image_size=size, width_mult=width_mult,
                                        pretrained_path=pretrained_path)
    default_spec, default_steps = default_anchors(backbone_name, size, len(backbone.out_channels))
    return SSD(backbone=backbone, num_classes=num_classes, anchor_spec=anchor_spec or default_spec,
               image_size=size, head=head or ("ssdlite" if backbone_name in LITE_BACKBONES else "ssd"),
               anchor_steps=default_steps if anchor_spec is None else None)
