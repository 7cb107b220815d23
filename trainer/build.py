"""The one place where a recipe becomes keyword arguments for the trainer's components."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass

import torch

from curate.recipe import Recipe
from trainer.augment import build_augmentation
from trainer.checkpoint import load_checkpoint
from trainer.loss import MultiBoxLoss, class_weights_from_counts
from trainer.model import build_ssd
from trainer.priors import AnchorSpec
from trainer.weights import freeze

log = logging.getLogger(__name__)
WARMUP_START_FACTOR = 0.1  # warm-up starts at lr / 10


@dataclass
class FineTuneReport:
    source: str
    loaded: int
    skipped_shape: int
    missing: int


def anchor_spec(recipe: Recipe) -> AnchorSpec | None:
    a = recipe.anchors
    if not a.scales:
        return None
    return AnchorSpec(tuple(a.scales), tuple(tuple(r) for r in a.aspect_ratios), a.extra_square)


def model_from_recipe(recipe: Recipe, classes: list[str], device: torch.device):
    """The SSD for ``classes`` (+ background); fine-tuned from ``train.init_from`` when given."""
    m = recipe.model
    model = build_ssd(m.backbone, num_classes=len(classes) + 1, image_size=tuple(m.image_size),
                      anchor_spec=anchor_spec(recipe), width_mult=m.width_mult, head=m.head or None,
                      pretrained_path=m.pretrained or None)
    report = _init_from(model, recipe.train.init_from) if recipe.train.init_from else None
    if recipe.train.trainable_last_n >= 0:
        frozen = freeze(model, trainable_last_n=recipe.train.trainable_last_n)
        log.info("freezing: %s", frozen)
    return model.to(device), report


def _init_from(model: torch.nn.Module, path: str) -> FineTuneReport:
    """Load every tensor whose name and shape match (a new class list rebuilds the classifier head)."""
    saved = load_checkpoint(path)["model"]
    own = model.state_dict()
    matching = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    report = FineTuneReport(path, len(matching), sum(1 for k, v in saved.items()
                                                    if k in own and own[k].shape != v.shape),
                            sum(1 for k in own if k not in saved))
    log.info("fine-tuning from %s: %d tensors loaded, %d rebuilt (shape differs: new classes), "
             "%d new", path, report.loaded, report.skipped_shape, report.missing)
    return report


def criterion_from_recipe(recipe: Recipe, manifest) -> MultiBoxLoss:
    loss = recipe.loss
    weights = None
    if loss.class_weighting != "none":
        counts = Counter(label for r in manifest.split("train") for label in r["labels"])
        background = sum(counts.values()) * max(loss.neg_pos_ratio, 1.0)  # mined negatives per positive
        weights = class_weights_from_counts([background] + [counts.get(c, 0) for c in manifest.classes],
                                            loss.class_weighting)
    return MultiBoxLoss(neg_pos_ratio=loss.neg_pos_ratio, n_neg_min=loss.n_neg_min, mining=loss.mining,
                        loc_weight=loss.loc_weight, class_weights=weights,
                        focal_gamma=loss.focal_gamma or None)


def train_pipeline(recipe: Recipe):
    return build_augmentation(recipe.augment.preset, size=tuple(recipe.model.image_size),
                              seed=recipe.train.seed, resize_mode=recipe.model.resize_mode,
                              **recipe.augment.settings)


def eval_pipeline(recipe: Recipe):
    return build_augmentation("none", size=tuple(recipe.model.image_size), seed=recipe.train.seed,
                              resize_mode=recipe.model.resize_mode)


def optimizer_from_recipe(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = recipe.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


def scheduler_from_recipe(recipe: Recipe, optimizer, steps_per_epoch: int):
    """Per-step LambdaLR: linear warm-up, then cosine to 0, step drops, or constant."""
    t = recipe.train
    total = max(1, t.epochs * steps_per_epoch)
    warmup = int(t.warmup_epochs * steps_per_epoch)
    milestones = [m * steps_per_epoch for m in t.step_milestones]

    def factor(step: int) -> float:
        if step < warmup:
            return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * step / warmup
        if t.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
        if t.scheduler == "step":
            return t.step_gamma ** sum(step >= m for m in milestones)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
