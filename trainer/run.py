"""A training run: wires recipe + manifest into model, loss, optimiser, loaders and the epoch loop.

Outputs in the run folder: ``last.pt`` (every epoch) and ``best.pt`` (by the recipe's best_metric),
``metrics.jsonl`` and ``metrics.csv`` (one row per epoch: losses, lr, img/s, val loss, mAP@0.5, the
eval-minus-train loss gap), ``curves.png``, ``recipe.yaml`` (the resolved recipe) and ``augmentation.json``.
``resume=True`` continues from ``last.pt`` exactly (epoch, optimiser, scheduler, RNG states; shuffling and
augmentation depend only on seed and epoch). Under ``torchrun`` each process trains its shard
(DistributedSampler; gloo on CPU, NCCL on GPU) and only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from curate.recipe import Recipe, recipe_to_dict
from trainer import build, checkpoint, curves
from trainer.data import ManifestDataset, make_loader, read_manifest, set_epoch
from trainer.engine import evaluate, train_one_epoch
from trainer.progress import EpochProgress

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    epochs_run: int
    best_score: float | None
    stopped_early: bool
    history: list[dict]


@dataclass
class _Context:
    recipe: Recipe
    out_dir: Path
    device: torch.device
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def run_training(recipe: Recipe, manifest_path: str | Path, out_dir: str | Path, *, resume: bool = False,
                 progress: bool | None = None) -> RunResult:
    ctx = _context(recipe, Path(out_dir))
    manifest = read_manifest(manifest_path)
    torch.manual_seed(recipe.train.seed)
    model, load_report = build.model_from_recipe(recipe, manifest.classes, ctx.device)
    criterion = build.criterion_from_recipe(recipe, manifest).to(ctx.device)
    train_set = ManifestDataset(manifest.split("train"), manifest.classes, build.train_pipeline(recipe))
    val_records = manifest.split("val")
    val_set = ManifestDataset(val_records, manifest.classes, build.eval_pipeline(recipe)) if val_records else None
    steps_per_epoch = max(1, len(train_set) // (recipe.train.batch_size * ctx.world))
    optimizer = build.optimizer_from_recipe(recipe, model)
    scheduler = build.scheduler_from_recipe(recipe, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if ctx.device.type == "cuda" and recipe.train.amp else None
    state = {"epoch": 0, "best": None, "history": [], "since_best": 0}
    if resume:
        state = _resume(ctx, model, optimizer, scheduler, scaler)
    if ctx.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if ctx.is_main:
        _write_run_files(ctx, train_set, load_report, manifest)
    loaders = _loaders(ctx, train_set, val_set)
    return _epochs(ctx, model, criterion, optimizer, scheduler, scaler, loaders, state, train_set, val_set,
                   progress)


def _context(recipe: Recipe, out_dir: Path) -> _Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    wanted = recipe.train.device
    cuda = torch.cuda.is_available() and wanted in ("auto", "cuda")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no GPU is visible; fix: set train.device: auto")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    return _Context(recipe, out_dir, device, rank, world)


def _resume(ctx: _Context, model, optimizer, scheduler, scaler) -> dict:
    saved = checkpoint.load_checkpoint(ctx.out_dir / checkpoint.LAST, map_location=ctx.device)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    checkpoint.restore_rng_state(saved["rng"])
    log.info("resumed from %s after epoch %d", ctx.out_dir / checkpoint.LAST, saved["epoch"])
    return {"epoch": saved["epoch"], "best": saved.get("best"), "history": list(saved.get("history", [])),
            "since_best": saved.get("since_best", 0)}


def _loaders(ctx: _Context, train_set, val_set):
    t = ctx.recipe.train
    train = make_loader(train_set, batch_size=t.batch_size, train=True, workers=t.workers, seed=t.seed,
                        distributed=ctx.world > 1)
    val = (make_loader(val_set, batch_size=t.batch_size, train=False, workers=t.workers, seed=t.seed)
           if val_set is not None and ctx.is_main else None)
    return train, val


def _epochs(ctx, model, criterion, optimizer, scheduler, scaler, loaders, state, train_set, val_set,
            progress) -> RunResult:
    t = ctx.recipe.train
    train_loader, val_loader = loaders
    stopped_early = False
    describe = lambda idx: ", ".join(train_set.records[i]["filepath"] for i in idx)  # noqa: E731
    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        set_epoch(train_loader, epoch, t.seed)
        images = len(train_loader.sampler)  # this process's images per epoch
        with EpochProgress(epoch, t.epochs, images, enabled=ctx.is_main and progress) as on_batch:
            stats = train_one_epoch(model, criterion, train_loader, optimizer, scheduler, device=ctx.device,
                                    iou_threshold=ctx.recipe.loss.iou_threshold, scaler=scaler,
                                    grad_clip=t.grad_clip, describe_batch=describe, progress=on_batch)
        row = {"epoch": epoch, "train_loss": stats.loss, "train_cls": stats.cls, "train_loc": stats.loc,
               "lr": stats.lr, "images_per_second": round(stats.images_per_second * ctx.world, 2)}
        if val_loader is not None and (epoch % t.val_every == 0 or epoch == t.epochs):
            row.update(_validate(ctx, model, criterion, val_loader, val_set))
        state["history"].append(row)
        if ctx.is_main:
            stopped_early = _after_epoch(ctx, model, optimizer, scheduler, scaler, state, row, train_set)
        if ctx.world > 1:
            stopped_early = _broadcast_flag(stopped_early, ctx)
        state["epoch"] = epoch
        if stopped_early:
            break
    return RunResult(ctx.out_dir, state["epoch"], state["best"], stopped_early, state["history"])


def _validate(ctx, model, criterion, val_loader, val_set) -> dict:
    from trainer.metrics import voc_map50

    t = ctx.recipe.train
    sizes = [(r["width"], r["height"]) for r in val_set.records]
    result = evaluate(getattr(model, "module", model), criterion, val_loader, device=ctx.device,
                      image_sizes=sizes, iou_threshold=ctx.recipe.loss.iou_threshold,
                      score_threshold=t.score_threshold, nms_iou=t.nms_iou)
    return {"val_loss": result.loss, "map50": voc_map50(result.detections, result.ground_truths)}


def _score(row: dict, metric: str) -> float | None:
    value = row.get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return -value if metric == "val_loss" else value  # higher is better


def _after_epoch(ctx, model, optimizer, scheduler, scaler, state, row, train_set) -> bool:
    t = ctx.recipe.train
    if "val_loss" in row:
        row["eval_minus_train_loss"] = row["val_loss"] - row["train_loss"]
    score = _score(row, t.best_metric)
    improved = score is not None and (state["best"] is None or score > state["best"])
    if improved:
        state["best"], state["since_best"] = score, 0
    elif score is not None:
        state["since_best"] += 1
    saved = dict(model=checkpoint.model_state(model), optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if scaler else {},
                 epoch=row["epoch"], best=state["best"], since_best=state["since_best"],
                 history=state["history"], recipe=recipe_to_dict(ctx.recipe), classes=train_set.classes)
    checkpoint.save_checkpoint(ctx.out_dir / checkpoint.LAST, **saved)
    if improved:
        checkpoint.save_checkpoint(ctx.out_dir / checkpoint.BEST, **saved)
    _log_row(ctx.out_dir, row)
    if _plot_due(row, t):
        curves.plot_history(state["history"], ctx.out_dir / "curves.png")
    log.info("epoch %d: %s", row["epoch"], {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
    return bool(t.early_stop_patience and state["since_best"] >= t.early_stop_patience)


CURVE_PLOTS_PER_RUN = 10  # a plot costs ~1 s on a CPU: redraw it at most this often (and at the end)


def _plot_due(row: dict, t) -> bool:
    every = max(1, t.epochs // CURVE_PLOTS_PER_RUN)
    return row["epoch"] % every == 0 or row["epoch"] == t.epochs or "map50" in row


def _broadcast_flag(flag: bool, ctx: _Context) -> bool:
    tensor = torch.tensor([int(flag)], device=ctx.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _log_row(out_dir: Path, row: dict) -> None:
    with (out_dir / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    curves.write_csv(out_dir / "metrics.jsonl", out_dir / "metrics.csv")


def _write_run_files(ctx: _Context, train_set, load_report, manifest) -> None:
    import yaml

    from trainer.augment import describe_augmentation

    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    (ctx.out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe_to_dict(ctx.recipe), sort_keys=False))
    (ctx.out_dir / "augmentation.json").write_text(json.dumps(describe_augmentation(train_set.pipeline),
                                                              indent=2, default=str))
    summary = {"classes": manifest.classes, "manifest": manifest.header, "device": str(ctx.device),
               "world_size": ctx.world, "pretrained": asdict(load_report) if load_report else None}
    (ctx.out_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str))
