"""Pretrained backbone weights (local files or torchvision's ImageNet weights) and freezing.

``load_pretrained(backbone, source)``: ``source`` is None (train from scratch), ``"imagenet"``
(torchvision's weights for the backbone's body, from the torch hub cache or downloaded), or a local
checkpoint file. Files are read with ``torch.load(weights_only=True)``; a ``state_dict`` / ``model``
entry and DataParallel ``module.`` prefixes are unwrapped, and a leading name prefix (``body.``,
``backbone.``) is dropped when that makes more names match. Tensors load by name where the shape agrees;
what matched, what the backbone kept at its initialisation (missing), what the file had in excess
(unexpected) and what had another shape are returned as a :class:`LoadReport` and logged. Requested
weights that cannot be had raise :class:`PretrainedWeightsError` naming the recipe key and the fix.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Iterable, Mapping, Union

import torch
import torchvision
from torch import nn

from trainer.errors import TrainerError

logger = logging.getLogger(__name__)

PretrainedSource = Union[str, os.PathLike, None]
IMAGENET = "imagenet"
DEFAULT_RECIPE_KEY = "model.pretrained"
CHECKPOINT_STATE_KEYS = ("state_dict", "model")  # where training scripts nest the weights
DATA_PARALLEL_PREFIX = "module."
MAX_STRIPPED_PREFIX_DEPTH = 2  # try dropping up to two leading name components ("body.", "model.backbone.")
SCRATCH_HINT = "or to \"\" (empty) to train from scratch"
BATCHNORM_COUNTER = "num_batches_tracked"


class PretrainedWeightsError(TrainerError, RuntimeError):
    """Weights were asked for but cannot be loaded; the message names the recipe key and the fix."""


@dataclass(frozen=True)
class LoadReport:
    source: str
    stripped_prefix: str
    matched_keys: tuple[str, ...]
    missing_keys: tuple[str, ...]  # in the backbone, not in the file: left at their initialisation
    unexpected_keys: tuple[str, ...]  # in the file, no such name in the backbone
    mismatched_keys: tuple[str, ...]  # same name, another shape: skipped

    @property
    def matched(self) -> int:
        return len(self.matched_keys)

    @property
    def missing(self) -> int:
        return len(self.missing_keys)

    @property
    def unexpected(self) -> int:
        return len(self.unexpected_keys)

    @property
    def shape_mismatched(self) -> int:
        return len(self.mismatched_keys)

    def summary(self) -> str:
        prefix = f" (dropped prefix {self.stripped_prefix!r})" if self.stripped_prefix else ""
        return (f"{self.source}{prefix}: {self.matched} tensors loaded, {self.missing} backbone tensors "
                f"not in the file (kept at init), {self.unexpected} file tensors unused, "
                f"{self.shape_mismatched} skipped for another shape")


@dataclass(frozen=True)
class FreezeReport:
    trainable_params: int
    frozen_params: int


def load_pretrained(backbone: nn.Module, source: PretrainedSource, *,
                    recipe_key: str = DEFAULT_RECIPE_KEY) -> LoadReport | None:
    if source is None:
        return None
    if str(source) == IMAGENET:
        return load_imagenet_weights(backbone, recipe_key=recipe_key)
    path = Path(source).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(f"{recipe_key}: weights file {path} not found; fix the path, set "
                                     f"{recipe_key} to '{IMAGENET}' (torchvision, needs internet once), "
                                     f"{SCRATCH_HINT}")
    return load_backbone_weights(backbone, path, recipe_key=recipe_key)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from ``state_dict`` and ``module.``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise PretrainedWeightsError(f"{path}: cannot be read with torch.load(weights_only=True) (it pickles "
                                     f"more than tensors; re-save its state_dict): {error}") from error
    if isinstance(checkpoint, Mapping):
        for key in CHECKPOINT_STATE_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    tensors = ({key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in checkpoint.items()
                if isinstance(value, torch.Tensor)} if isinstance(checkpoint, Mapping) else {})
    if not tensors:
        raise PretrainedWeightsError(f"{path}: no state dict of tensors found (looked at the top level "
                                     f"and under {CHECKPOINT_STATE_KEYS})")
    return tensors


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike, *,
                          recipe_key: str = DEFAULT_RECIPE_KEY) -> LoadReport:
    return load_state_dict_into(backbone, read_state_dict(path), source=str(path), recipe_key=recipe_key)


def load_imagenet_weights(backbone: nn.Module, *, recipe_key: str = DEFAULT_RECIPE_KEY) -> LoadReport:
    name = getattr(backbone, "torchvision_weights", None)
    if name is None:
        raise PretrainedWeightsError(
            f"{recipe_key}: '{IMAGENET}' has no torchvision weights for {type(backbone).__name__}; set "
            f"{recipe_key} to a local state-dict file (MobileNet v1 x0.25: ../shared/data/weights/"
            f"mobilenetv1-x0.25-imagenet/mobilenetV1X0.25_pretrain.tar) {SCRATCH_HINT}")
    weights = torchvision.models.get_weight(name)
    try:
        state_dict = weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad hash is a RuntimeError
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise PretrainedWeightsError(
            f"{recipe_key}: '{IMAGENET}' asks for torchvision's {name}, which is not in {cache} and could "
            f"not be downloaded ({error}). Fix: run once on a machine with internet access, or copy "
            f"{weights.url} into {cache}, or set {recipe_key} to a local state-dict file, "
            f"{SCRATCH_HINT}") from error
    return load_state_dict_into(backbone, state_dict, source=f"torchvision {name}", recipe_key=recipe_key)


def load_state_dict_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str,
                         recipe_key: str = DEFAULT_RECIPE_KEY) -> LoadReport:
    """Load every tensor whose (prefix-stripped) name and shape match; report the rest."""
    target = module.state_dict()
    prefix = _best_prefix_to_strip(state_dict.keys(), target.keys())
    renamed = {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
    fitting = {key: value for key, value in renamed.items()
               if key in target and value.shape == target[key].shape}
    report = LoadReport(
        source=source, stripped_prefix=prefix, matched_keys=tuple(fitting),
        missing_keys=tuple(key for key in target if key not in renamed),
        unexpected_keys=tuple(key for key in state_dict
                              if not key.startswith(prefix) or key[len(prefix):] not in target),
        mismatched_keys=tuple(key for key in renamed if key in target and key not in fitting))
    if not any(not key.endswith(BATCHNORM_COUNTER) for key in fitting):  # scalar counters fit any width
        raise PretrainedWeightsError(f"{recipe_key}: no tensor of {source} fits {type(module).__name__} "
                                     f"({report.summary()}); is it the same architecture and width_mult?")
    module.load_state_dict(fitting, strict=False)
    log = logger.warning if report.shape_mismatched else logger.info
    log("pretrained weights: %s", report.summary())
    return report


def _best_prefix_to_strip(source_keys: Iterable[str], target_keys: Iterable[str]) -> str:
    source_keys, target_keys = list(source_keys), set(target_keys)
    candidates = {""}
    for key in source_keys:
        parts = key.split(".")
        for depth in range(1, min(MAX_STRIPPED_PREFIX_DEPTH, len(parts) - 1) + 1):
            candidates.add(".".join(parts[:depth]) + ".")

    def matches(prefix: str) -> int:
        return sum(key.startswith(prefix) and key[len(prefix):] in target_keys for key in source_keys)

    return max(sorted(candidates, key=lambda prefix: (len(prefix), prefix)), key=matches)


def freeze(model: nn.Module, *, trainable_last_n: int | None = None,
           names: Iterable[str] | None = None) -> FreezeReport:
    """Set ``requires_grad`` so that only the wanted parameters train; every parameter is made
    trainable first, so calls do not accumulate.

    ``trainable_last_n``: of the backbone body's blocks (``backbone.body_blocks()``), only the last N
    train (0 freezes the whole body); extra layers and the head always train. ``names``: freeze every
    parameter under these module-name prefixes (``"backbone.stage1"``). BatchNorm running statistics are
    buffers, not parameters: the training engine decides whether frozen blocks run in eval mode.
    """
    if trainable_last_n is None and names is None:
        raise ValueError("freeze: give trainable_last_n (depth) or names (layer-name prefixes)")
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    if trainable_last_n is not None:
        _freeze_body_except_last(model, trainable_last_n)
    for prefix in names or ():
        _freeze_prefix(model, prefix)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    report = FreezeReport(trainable_params=trainable, frozen_params=frozen)
    logger.info("freeze: %d parameters trainable, %d frozen", trainable, frozen)
    return report


def _freeze_body_except_last(model: nn.Module, trainable_last_n: int) -> None:
    backbone = getattr(model, "backbone", model)
    blocks = backbone.body_blocks()
    if not 0 <= trainable_last_n <= len(blocks):
        raise ValueError(f"freeze: trainable_last_n must be within 0..{len(blocks)} (the "
                         f"{type(backbone).__name__} body has {len(blocks)} blocks), got {trainable_last_n}")
    for block in blocks[:len(blocks) - trainable_last_n]:
        block.requires_grad_(False)


def _freeze_prefix(model: nn.Module, prefix: str) -> None:
    prefix = prefix.rstrip(".")
    selected = [parameter for name, parameter in model.named_parameters()
                if name == prefix or name.startswith(prefix + ".")]
    if not selected:
        module_names = [name for name, _ in model.named_modules() if name]
        close = get_close_matches(prefix, module_names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"freeze: no parameter under {prefix!r}{hint}")
    for parameter in selected:
        parameter.requires_grad_(False)
