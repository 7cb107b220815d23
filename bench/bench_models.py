"""Benchmark: forward and training-step images/s of every SSD backbone (trainer.model.build_ssd) beside
torchvision's ssdlite320_mobilenet_v3_large and ssd300_vgg16, plus augmentation images/s per core.

All models are built with the same ``--num-classes`` (background included) and random initialisation (no
weights are downloaded). torch runs with ``--threads`` intra-op threads (default 2) and, unless the
environment says otherwise, ``OMP_WAIT_POLICY=PASSIVE`` (see below). Every measurement has warm-up
iterations, then timed iterations (fewer for the two VGG16s); the median iteration time is reported. A model
and its torchvision counterpart are timed in alternation, so both see the same machine load.

What is timed:

* forward (eval mode, ``torch.no_grad``), batch 1 and batch ``--batch``: ours ``model(images)`` (backbone,
  heads, flatten + concat; no decoding, no NMS); torchvision ``model.head(list(model.backbone(images)
  .values()))``: backbone and head only, i.e. without its GeneralizedRCNNTransform (normalise + resize),
  anchor generation and postprocess (decode + NMS).
* training step (train mode, batch ``--batch``, SGD lr 1e-3 momentum 0.9): ours ``match_batch`` on the
  random boxes + forward + ``MultiBoxLoss`` (per-image mining, 3:1) + backward + step; torchvision
  ``sum(model(images, targets).values())`` (which includes its transform, anchors, matching and loss) +
  backward + step. The same random boxes (1 to 5 per image) feed both.

Augmentation: bench/bench_augment.py's ``time_preset`` for each preset, in this process, OpenCV on one
thread (its figure is per core; best of its repeats, as that script reports).

Table on stderr, JSON on stdout or ``--json FILE``. Runs in about 5 to 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# libgomp's default wait policy makes idle threads spin; on a shared machine with more runnable processes
# than cores a spinning thread holds a core its partner needs, and 2-thread timings became up to 8x
# slower and erratic (BENCHMARKS.md). OpenMP reads this once, when torch loads it; the caller's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
import bench_augment  # noqa: E402
from trainer.box_coder import match_batch  # noqa: E402
from trainer.loss import MultiBoxLoss  # noqa: E402
from trainer.model import build_ssd  # noqa: E402

SEED = 0
NUM_CLASSES = 21  # 20 Pascal VOC classes + background
BOXES_PER_IMAGE = (1, 5)  # random ground truths per image, inclusive
MIN_BOX_SIDE = 0.05  # relative: random boxes are 5% .. 60% of the image side
MAX_BOX_SIDE = 0.6
LEARNING_RATE = 1e-3
MOMENTUM = 0.9
NEG_POS_RATIO = 3.0
AUGMENT_IMAGES = 300  # per preset and repeat; enough for a stable figure at a few hundred img/s
AUGMENT_REPEATS = 3


@dataclass(frozen=True)
class Plan:
    """Iterations per measurement: (warm-up, timed)."""

    forward_1: tuple[int, int] = (3, 10)
    forward_b: tuple[int, int] = (1, 5)
    train_b: tuple[int, int] = (1, 5)


HEAVY_PLAN = Plan(forward_1=(1, 3), forward_b=(1, 3), train_b=(1, 3))  # the two VGG16s: ~5x the work


@dataclass
class Case:
    name: str
    family: str  # "curate" or "torchvision"
    side: int
    build: Callable[[], nn.Module]
    plan: Plan = field(default_factory=Plan)
    pair: str | None = None  # comparable torchvision model, for the ratios


def our_cases(num_classes: int) -> list[Case]:
    def ours(backbone: str, side: int, **kwargs) -> Callable[[], nn.Module]:
        return lambda: build_ssd(backbone, num_classes=num_classes, image_size=side, **kwargs)

    return [
        Case("vgg16", "curate", 300, ours("vgg16", 300), HEAVY_PLAN, pair="tv_ssd300_vgg16"),
        Case("mobilenet_v1 x0.25", "curate", 300, ours("mobilenet_v1", 300, width_mult=0.25)),
        Case("mobilenet_v1 x0.5", "curate", 300, ours("mobilenet_v1", 300, width_mult=0.5)),
        Case("mobilenet_v1 x1.0", "curate", 300, ours("mobilenet_v1", 300, width_mult=1.0)),
        Case("mobilenet_v2 ssdlite", "curate", 300, ours("mobilenet_v2", 300)),
        Case("mobilenet_v2_fpn", "curate", 320, ours("mobilenet_v2_fpn", 320)),
        Case("mobilenet_v3_large", "curate", 320, ours("mobilenet_v3_large", 320),
             pair="tv_ssdlite320_mobilenet_v3_large"),
        Case("tiny", "curate", 64, ours("tiny", 64)),
    ]


def torchvision_cases(num_classes: int) -> list[Case]:
    detection = torchvision.models.detection
    return [
        Case("tv_ssd300_vgg16", "torchvision", 300,
             lambda: detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes),
             HEAVY_PLAN),
        Case("tv_ssdlite320_mobilenet_v3_large", "torchvision", 320,
             lambda: detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                             num_classes=num_classes)),
    ]


def random_targets(batch: int, side: int, num_classes: int, generator: torch.Generator
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per image: relative xyxy boxes ``[G, 4]`` and labels ``[G]`` in 1..C."""
    boxes, labels = [], []
    for _ in range(batch):
        count = int(torch.randint(BOXES_PER_IMAGE[0], BOXES_PER_IMAGE[1] + 1, (1,), generator=generator))
        wh = MIN_BOX_SIDE + (MAX_BOX_SIDE - MIN_BOX_SIDE) * torch.rand(count, 2, generator=generator)
        x0y0 = torch.rand(count, 2, generator=generator) * (1.0 - wh)
        boxes.append(torch.cat([x0y0, x0y0 + wh], dim=1))
        labels.append(torch.randint(1, num_classes, (count,), generator=generator))
    return boxes, labels


def interleaved_medians(steps: list[Callable[[], object]], warmup: int, timed: int) -> list[float]:
    """Median seconds per call of each step. Warm-up calls first; then ``timed`` rounds, each timing one
    call of every step in turn, so steps compared with each other see the same machine load."""
    for step in steps:
        for _ in range(warmup):
            step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(timed):
        for step, step_times in zip(steps, times):
            start = time.perf_counter()
            step()
            step_times.append(time.perf_counter() - start)
    return [statistics.median(step_times) for step_times in times]


def forward_fn(case: Case, model: nn.Module, images: torch.Tensor) -> Callable[[], object]:
    if case.family == "curate":
        return lambda: model(images)
    return lambda: model.head(list(model.backbone(images).values()))


def train_fn(case: Case, model: nn.Module, images: torch.Tensor, boxes: list[torch.Tensor],
             labels: list[torch.Tensor]) -> Callable[[], object]:
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    if case.family == "curate":
        criterion = MultiBoxLoss(neg_pos_ratio=NEG_POS_RATIO, mining="per_image")
        priors_cxcywh = model.priors_cxcywh
        priors_xyxy = model.default_boxes.xyxy()

        def step() -> None:
            loc_targets, label_targets = match_batch(boxes, labels, priors_xyxy, priors_cxcywh)
            cls_logits, loc = model(images)
            loss = criterion(cls_logits, loc, label_targets, loc_targets).total
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    image_list = list(images)
    targets = [{"boxes": b * case.side, "labels": l} for b, l in zip(boxes, labels)]

    def tv_step() -> None:
        loss = sum(model(image_list, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return tv_step


def measure_group(group: list[Case], batch: int, num_classes: int) -> list[dict]:
    """Rows for the cases of ``group`` (one model, or ours beside its torchvision pair), measured
    interleaved; every case gets the same random images and boxes."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(SEED)
    side = group[0].side
    images_1 = torch.rand(1, 3, side, side, generator=generator)
    images_b = torch.rand(batch, 3, side, side, generator=generator)
    boxes, labels = random_targets(batch, side, num_classes, generator)
    plan = group[0].plan
    models = []
    for case in group:
        torch.manual_seed(SEED)
        models.append(case.build().eval())
    rows = [{"model": case.name, "family": case.family, "input": case.side,
             "params": sum(p.numel() for p in model.parameters()),
             "default_boxes": _num_default_boxes(case, model)} for case, model in zip(group, models)]
    with torch.no_grad():
        fwd_1 = interleaved_medians([forward_fn(c, m, images_1) for c, m in zip(group, models)], *plan.forward_1)
        fwd_b = interleaved_medians([forward_fn(c, m, images_b) for c, m in zip(group, models)], *plan.forward_b)
    for model in models:
        model.train()
    train_b = interleaved_medians([train_fn(c, m, images_b, boxes, labels) for c, m in zip(group, models)],
                                  *plan.train_b)
    wall = round(time.perf_counter() - started, 1)
    for row, case, model, f1, fb, tb in zip(rows, group, models, fwd_1, fwd_b, train_b):
        row.update({
            "forward_b1_img_s": round(1.0 / f1, 2), f"forward_b{batch}_img_s": round(batch / fb, 2),
            f"train_b{batch}_img_s": round(batch / tb, 2),
            "forward_b1_ms": round(1000 * f1, 1), f"forward_b{batch}_ms": round(1000 * fb, 1),
            f"train_b{batch}_ms": round(1000 * tb, 1),
            "iterations_warmup_timed": {"forward_b1": plan.forward_1, f"forward_b{batch}": plan.forward_b,
                                        f"train_b{batch}": plan.train_b},
            "group_wall_s": wall,
        })
        if case.family == "curate":
            priors_xyxy = model.default_boxes.xyxy()
            (match_s,) = interleaved_medians(
                [lambda: match_batch(boxes, labels, priors_xyxy, model.priors_cxcywh)], 1, 5)
            row["match_batch_ms"] = round(1000 * match_s, 2)
    return rows


def _num_default_boxes(case: Case, model: nn.Module) -> int:
    """Default boxes (ours) or anchors (torchvision) per image; ``model`` must be in eval mode."""
    if case.family == "curate":
        return len(model.default_boxes)
    with torch.no_grad():
        maps = list(model.backbone(torch.zeros(1, 3, case.side, case.side)).values())
    per_location = model.anchor_generator.num_anchors_per_location()
    return sum(a * m.shape[-2] * m.shape[-1] for a, m in zip(per_location, maps))


def groups_of(cases: list[Case]) -> list[list[Case]]:
    """Each of our models with its torchvision pair (when both are selected), the others alone."""
    by_name = {case.name: case for case in cases}
    paired = {case.pair for case in cases if case.pair in by_name}
    return [[case, by_name[case.pair]] if case.pair in by_name else [case]
            for case in cases if case.name not in paired]


def ratios(rows: list[dict], cases: list[Case], batch: int) -> list[dict]:
    by_name = {row["model"]: row for row in rows}
    result = []
    for case in cases:
        if case.pair and case.name in by_name and case.pair in by_name:
            ours, theirs = by_name[case.name], by_name[case.pair]
            result.append({"ours": case.name, "torchvision": case.pair, **{
                key: round(ours[key] / theirs[key], 3)
                for key in ("params", "forward_b1_img_s", f"forward_b{batch}_img_s", f"train_b{batch}_img_s")}})
    return result


def augmentation_rows() -> list[dict]:
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        inputs = bench_augment.make_inputs(bench_augment.np.random.default_rng(bench_augment.SEED))
        return [bench_augment.time_preset(preset, "stretch", inputs, AUGMENT_IMAGES, AUGMENT_REPEATS)
                for preset in bench_augment.PRESETS]
    finally:
        cv2.setNumThreads(previous)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def print_table(rows: list[dict], pair_ratios: list[dict], augment: list[dict], batch: int) -> None:
    out = sys.stderr
    header = (f"{'model':<34}{'input':>6}{'params':>12}{'boxes':>7}{'fwd b1':>9}{f'fwd b{batch}':>9}"
              f"{f'train b{batch}':>10}   (img/s)")
    print(header, file=out)
    for row in rows:
        print(f"{row['model']:<34}{row['input']:>6}{row['params']:>12,}{row['default_boxes']:>7}"
              f"{row['forward_b1_img_s']:>9.2f}{row[f'forward_b{batch}_img_s']:>9.2f}"
              f"{row[f'train_b{batch}_img_s']:>10.2f}", file=out)
    for ratio in pair_ratios:
        print(f"ours/torchvision {ratio['ours']} / {ratio['torchvision']}: params {ratio['params']:.3f}, "
              f"fwd b1 {ratio['forward_b1_img_s']:.3f}, fwd b{batch} {ratio[f'forward_b{batch}_img_s']:.3f}, "
              f"train b{batch} {ratio[f'train_b{batch}_img_s']:.3f}", file=out)
    for row in augment:
        print(f"augment {row['preset']:<6} {row['images_per_s']:>8.1f} img/s per core "
              f"({row['ms_per_image']:.2f} ms/img)", file=out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="batch for the batched forward and training step")
    parser.add_argument("--num-classes", type=int, default=NUM_CLASSES, help="classes incl. background")
    parser.add_argument("--only", nargs="*", default=None, help="model names to run (default: all)")
    parser.add_argument("--no-augment", action="store_true", help="skip the augmentation figures")
    parser.add_argument("--json", type=Path, default=None, help="write the results here, not stdout")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    before = {"loadavg_1_5_15": load_average(), "uptime": uptime()}
    started = time.perf_counter()
    cases = our_cases(args.num_classes) + torchvision_cases(args.num_classes)
    if args.only:
        cases = [case for case in cases if case.name in args.only]
    rows = []
    for group in groups_of(cases):
        rows += measure_group(group, args.batch, args.num_classes)
        print(f"  {' + '.join(c.name for c in group)}: {rows[-1]['group_wall_s']} s, "
              f"load {load_average()}", file=sys.stderr)
    augment = [] if args.no_augment else augmentation_rows()
    pair_ratios = ratios(rows, cases, args.batch)
    after = {"loadavg_1_5_15": load_average(), "uptime": uptime()}
    print_table(rows, pair_ratios, augment, args.batch)
    report = {
        "benchmark": "models",
        "num_classes": args.num_classes,
        "batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_before": before,
        "load_after": after,
        "total_seconds": round(time.perf_counter() - started, 1),
        "statistic": "median seconds per iteration after warm-up; img/s = batch / median",
        "models": rows,
        "ratios_ours_over_torchvision": pair_ratios,
        "augmentation_per_core": augment,
    }
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
