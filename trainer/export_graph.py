"""The SSD as a deployable graph: uint8 image in, final detections out (docs/export.md).

:class:`DeployableSSD` wraps a trained :class:`~trainer.model.SSD` with everything a mobile pipeline would
otherwise re-implement: normalisation, box decoding against the default boxes, softmax, the per-class
pre-NMS top-k, the score threshold, class-wise NMS and the final top-k. It reproduces
``SSD.postprocess`` exactly (same candidates, same strict ``>`` threshold, same IoU rule), so an exported
model and the torch model give the same detections.

NMS is one custom op, ``curate_ssd::multiclass_nms``: eager torch runs it per class with
``torchvision.ops.nms``; the ONNX exporter translates it to a single ``NonMaxSuppression`` node with the
classes as its batch axis (:func:`onnx_translation_table`). Classes as the batch keeps every class's
candidate boxes separate without torchvision's coordinate-offset trick, whose float32 offsets would move
box corners by ~1e-5 with many classes.

Pure torch + torchvision + onnxscript; never imports fiftyone.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.ops import box_convert

from trainer.box_coder import decode
from trainer.data import NORMALISE_MEAN, NORMALISE_STD
from trainer.model import PRE_NMS_CANDIDATES_PER_CLASS, SSD

INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "scores", "labels")
PIXEL_MAX = 255.0  # uint8 input; the trainer normalises pixels / 255 with ImageNet mean and std


@torch.library.custom_op("curate_ssd::multiclass_nms", mutates_args=())
def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, score_threshold: float,
                   max_per_class: int) -> torch.Tensor:
    """``boxes [C, K, 4]`` xyxy and ``scores [C, K]``, one row per class. Returns ``[M, 2]`` int64 rows
    ``(class, candidate)`` kept by NMS among the candidates scoring ``> score_threshold``, at most
    ``max_per_class`` per class, each class's rows by decreasing score (ONNX NonMaxSuppression's order)."""
    rows = [torch.zeros((0, 2), dtype=torch.int64, device=boxes.device)]
    for c in range(boxes.shape[0]):
        above = torch.nonzero(scores[c] > score_threshold).flatten()
        kept = above[torchvision.ops.nms(boxes[c, above], scores[c, above], iou_threshold)[:max_per_class]]
        rows.append(torch.stack([torch.full_like(kept, c), kept], dim=1))
    return torch.cat(rows)


@multiclass_nms.register_fake
def _multiclass_nms_shape(boxes, scores, iou_threshold, score_threshold, max_per_class):
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept, 2), dtype=torch.int64)


def _multiclass_nms_onnx(boxes, scores, iou_threshold: float, score_threshold: float, max_per_class: int):
    from onnxscript import opset18 as op

    # NonMaxSuppression: boxes [batch, K, 4], scores [batch, classes, K] -> rows (batch, class, box);
    # here the batch axis carries the classes and there is one "class" per batch entry
    selected = op.NonMaxSuppression(boxes, op.Unsqueeze(scores, [1]), op.Constant(value_ints=[max_per_class]),
                                    op.Constant(value_floats=[iou_threshold]),
                                    op.Constant(value_floats=[score_threshold]))
    return op.Concat(op.Slice(selected, [0], [1], [1]), op.Slice(selected, [2], [3], [1]), axis=1)


def onnx_translation_table() -> dict:
    """For ``torch.onnx.export(..., custom_translation_table=...)``."""
    return {torch.ops.curate_ssd.multiclass_nms.default: _multiclass_nms_onnx}


class DeployableSSD(nn.Module):
    """``image [1, H, W, 3]`` uint8 RGB, already resized to the model's input size ->
    ``boxes [K, 4]`` relative xyxy in [0, 1], ``scores [K]``, ``labels [K]`` int64 indices into the class
    list (0-based: the SSD's label minus one), K <= ``top_k``, by decreasing score."""

    def __init__(self, model: SSD, *, score_threshold: float, nms_iou: float, top_k: int,
                 candidates_per_class: int = PRE_NMS_CANDIDATES_PER_CLASS):
        super().__init__()
        self.model = model.eval()
        self.score_threshold, self.nms_iou, self.top_k = float(score_threshold), float(nms_iou), int(top_k)
        self.candidates_per_class = int(candidates_per_class)
        self.register_buffer("mean", torch.tensor(NORMALISE_MEAN).view(1, 3, 1, 1) * PIXEL_MAX)
        self.register_buffer("std", torch.tensor(NORMALISE_STD).view(1, 3, 1, 1) * PIXEL_MAX)
        self.eval()  # inference only: BatchNorm uses its running statistics

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pixels = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        cls_logits, loc = self.model(pixels)
        boxes = box_convert(decode(loc[0], self.model.priors_cxcywh, self.model.variances),
                            "cxcywh", "xyxy").clamp(0.0, 1.0)
        class_scores = cls_logits[0].softmax(dim=-1)[:, 1:]  # background dropped: column c is class c
        candidates = min(self.candidates_per_class, boxes.shape[0])
        top_scores, top_index = class_scores.topk(candidates, dim=0)  # [candidates, C], as SSD.postprocess
        class_boxes, class_scores = boxes[top_index.T], top_scores.T.contiguous()  # [C, K, 4], [C, K]
        selected = torch.ops.curate_ssd.multiclass_nms(class_boxes, class_scores, self.nms_iou,
                                                       self.score_threshold, self.top_k)
        classes, candidate = selected[:, 0], selected[:, 1]
        order = class_scores[classes, candidate].argsort(descending=True)[:self.top_k]
        classes, candidate = classes[order], candidate[order]
        return class_boxes[classes, candidate], class_scores[classes, candidate], classes


def export_onnx(model: SSD, path: Path, *, score_threshold: float, nms_iou: float, top_k: int) -> Path:
    """Write ``model`` with its post-processing as one ONNX file (weights inside); returns the path."""
    graph = DeployableSSD(model, score_threshold=score_threshold, nms_iou=nms_iou, top_k=top_k)
    example = torch.zeros(1, *model.image_size, 3, dtype=torch.uint8)
    program = torch.onnx.export(graph, (example,), dynamo=True, verbose=False, external_data=False,
                                custom_translation_table=onnx_translation_table(),
                                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES))
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    return path
