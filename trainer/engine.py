"""One epoch of training and one pass of validation: plain functions, wired by trainer/run.py."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch

from trainer.box_coder import match_batch
from trainer.errors import TrainerError

log = logging.getLogger(__name__)


class TrainingDiverged(TrainerError, FloatingPointError):
    """The loss became NaN/inf; the message names the batch's images."""


@dataclass
class EpochStats:
    loss: float = 0.0
    cls: float = 0.0
    loc: float = 0.0
    images: int = 0
    seconds: float = 0.0
    lr: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


@dataclass
class Validation:
    loss: float
    detections: list[dict] = field(default_factory=list)  # per image: boxes (abs xyxy), scores, labels
    ground_truths: list[dict] = field(default_factory=list)  # per image: boxes (abs xyxy), labels


def _targets(model, boxes, labels, device, iou_threshold: float):
    core = getattr(model, "module", model)
    priors_xyxy = core.default_boxes.xyxy().to(device)
    return match_batch([b.to(device) for b in boxes], [lab.to(device) for lab in labels], priors_xyxy,
                       core.priors_cxcywh, iou_threshold=iou_threshold, variances=core.variances)


def train_one_epoch(model, criterion, loader, optimizer, scheduler, *, device, iou_threshold: float = 0.5,
                    scaler=None, grad_clip: float = 0.0, step_scheduler_per_batch: bool = True,
                    describe_batch=None, progress=None) -> EpochStats:
    """``describe_batch(indices) -> str`` names the images when the loss diverges."""
    model.train()
    stats, start = EpochStats(), time.perf_counter()
    for images, boxes, labels, indices in loader:
        images = images.to(device, non_blocking=True)
        loc_targets, label_targets = _targets(model, boxes, labels, device, iou_threshold)
        with torch.autocast(device_type=device.type, enabled=scaler is not None):
            cls_logits, loc = model(images)
        try:
            parts = criterion(cls_logits.float(), loc.float(), label_targets, loc_targets)
        except FloatingPointError as exc:
            names = describe_batch(indices) if describe_batch else str(indices)
            raise TrainingDiverged(f"non-finite loss on the batch of {names}: {exc}; fix: run `curate "
                                   "clean` (degenerate boxes are the usual cause) or lower the lr") from None
        optimizer.zero_grad(set_to_none=True)
        _backward_and_step(parts.total, optimizer, scaler, model, grad_clip)
        if step_scheduler_per_batch and scheduler is not None:
            scheduler.step()
        _accumulate(stats, parts, len(indices), optimizer)
        if progress:
            progress(len(indices), stats)
    stats.seconds = time.perf_counter() - start
    return _averaged(stats)


def _backward_and_step(loss, optimizer, scaler, model, grad_clip: float) -> None:
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def _accumulate(stats: EpochStats, parts, batch_images: int, optimizer) -> None:
    stats.loss += float(parts.total.detach()) * batch_images
    stats.cls += float(parts.cls.detach()) * batch_images
    stats.loc += float(parts.loc.detach()) * batch_images
    stats.images += batch_images
    stats.lr = optimizer.param_groups[0]["lr"]


def _averaged(stats: EpochStats) -> EpochStats:
    if stats.images:
        stats.loss, stats.cls, stats.loc = (v / stats.images for v in (stats.loss, stats.cls, stats.loc))
    return stats


@torch.no_grad()
def evaluate(model, criterion, loader, *, device, image_sizes, iou_threshold: float = 0.5,
             score_threshold: float = 0.01, nms_iou: float = 0.45) -> Validation:
    """Validation loss and detections in absolute pixels of each original image (``image_sizes[index]``
    is its ``(width, height)``), ready for trainer.metrics."""
    model.eval()
    core = getattr(model, "module", model)
    total, images_seen = 0.0, 0
    result = Validation(loss=math.nan)
    for images, boxes, labels, indices in loader:
        images = images.to(device)
        cls_logits, loc = model(images)
        loc_targets, label_targets = _targets(model, boxes, labels, device, iou_threshold)
        total += float(criterion(cls_logits.float(), loc.float(), label_targets, loc_targets).total) * len(indices)
        images_seen += len(indices)
        detections = core.postprocess(cls_logits.float(), loc.float(), score_threshold, nms_iou)
        for det, gt_boxes, gt_labels, index in zip(detections, boxes, labels, indices):
            scale = torch.tensor(image_sizes[index] * 2, dtype=torch.float32)
            result.detections.append({"boxes": (det["boxes"].cpu() * scale).numpy(),
                                      "scores": det["scores"].cpu().numpy(),
                                      "labels": det["labels"].cpu().numpy()})
            result.ground_truths.append({"boxes": (gt_boxes * scale).numpy(), "labels": gt_labels.numpy()})
    result.loss = total / images_seen if images_seen else math.nan
    return result
