"""How fast a model is where it runs: images/s of network + decode + NMS at batch 1 and batch N (the
numbers a deployment budget needs), parameter count and size on disk."""

from __future__ import annotations

import time
from pathlib import Path

SPEED_IMAGES = 16  # images timed per batch size; enough for a stable median on CPU
WARMUP = 2


def measure_speed(model, recipe, filepaths: list[str], checkpoint: Path, *, batch: int = 8,
                  score_threshold: float = 0.01, nms_iou: float = 0.45) -> dict:
    import torch

    tensor = _preprocessed(recipe, filepaths[:SPEED_IMAGES])
    result = {"params": int(sum(p.numel() for p in model.parameters())),
              "weights_mb": sum(p.numel() * p.element_size() for p in model.state_dict().values()) / 2**20,
              "checkpoint_mb": checkpoint.stat().st_size / 2**20, "batch": batch}
    if not len(tensor):
        return result
    with torch.no_grad():
        for size in (1, batch):
            result[f"fps_batch{'1' if size == 1 else 'N'}"] = _images_per_second(model, tensor, size, score_threshold,
                                                                                   nms_iou)
    return result


def _preprocessed(recipe, filepaths: list[str]):
    import torch

    from curate.evaluate import network_input
    from trainer.build import eval_pipeline

    return network_input(eval_pipeline(recipe), filepaths) if filepaths else torch.zeros(0)


def _images_per_second(model, tensor, batch: int, score_threshold: float, nms_iou: float) -> float:
    batches = [tensor[i:i + batch] for i in range(0, len(tensor), batch)]
    for chunk in batches[:WARMUP]:
        model.postprocess(*model(chunk), score_threshold, nms_iou)
    start = time.perf_counter()
    for chunk in batches:
        model.postprocess(*model(chunk), score_threshold, nms_iou)
    return len(tensor) / (time.perf_counter() - start)
