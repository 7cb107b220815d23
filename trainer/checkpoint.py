"""Checkpoints: everything needed to continue a run exactly, loaded safely.

A checkpoint holds the model, optimiser, scheduler and AMP scaler states, the epoch just finished, the
best score so far, the metric history, the RNG states, the recipe (as plain data) and the class list.
It is written to a temporary file and renamed, so a process killed mid-write (kill -9) leaves the previous
checkpoint intact. It is read with ``torch.load(weights_only=True)``: only tensors and plain Python
containers, never arbitrary objects from an untrusted file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from trainer.errors import TrainerError

LAST, BEST = "last.pt", "best.pt"


class CheckpointError(TrainerError, RuntimeError):
    pass


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: Path, **state) -> Path:
    """Atomically write ``state`` (model, optimizer, scheduler, scaler, epoch, best, history, recipe,
    classes, ...) with the current RNG states."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**state, "rng": rng_state()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint; fix: train first, or point at runs/NAME/last.pt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise CheckpointError(f"{path}: cannot be read as a curate checkpoint ({type(exc).__name__}: "
                              f"{exc}); fix: use last.pt/best.pt written by curate train") from None


def model_state(model: torch.nn.Module) -> dict:
    """The state dict of a model, unwrapped from DistributedDataParallel."""
    return getattr(model, "module", model).state_dict()
