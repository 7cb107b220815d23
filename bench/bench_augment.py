"""Benchmark: augmentation images/s per core for the presets none / light / ssd (trainer.augment).

Synthetic 640x480 RGB images with 1 to 5 boxes, resized to 300x300, in one process with OpenCV limited to one
thread (so the figure is per core: a DataLoader with N workers scales it by about N). Each preset runs a warm-up,
then timed loops over a fixed, seeded set of inputs; the best of --repeats loops is reported (other processes
only ever slow a loop down). Table on stderr, JSON on stdout or --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.augment import PRESETS, RESIZE_MODES, build_augmentation  # noqa: E402

INPUT_W, INPUT_H = 640, 480  # pixels: a typical logo-dataset photo
OUTPUT_SIZE = (300, 300)  # SSD300
DISTINCT_INPUTS = 32  # images cycled through the timed loop (content does not change the cost much)
WARMUP_IMAGES = 20
SEED = 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="timed images per preset")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops per preset; the fastest counts")
    parser.add_argument("--resize-mode", choices=RESIZE_MODES, default="stretch")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = per-core figure)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here, not stdout")
    return parser.parse_args()


def make_inputs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    inputs = []
    for _ in range(DISTINCT_INPUTS):
        image = rng.integers(0, 256, (INPUT_H, INPUT_W, 3), dtype=np.uint8)
        count = int(rng.integers(1, 6))
        x0 = rng.uniform(0, INPUT_W - 40, count)
        y0 = rng.uniform(0, INPUT_H - 40, count)
        w = rng.uniform(20, INPUT_W / 2, count)
        h = rng.uniform(20, INPUT_H / 2, count)
        boxes = np.stack([x0, y0, np.minimum(x0 + w, INPUT_W), np.minimum(y0 + h, INPUT_H)], axis=1)
        inputs.append((image, boxes.astype(np.float32), rng.integers(1, 10, count).astype(np.int64)))
    return inputs


def time_preset(preset: str, resize_mode: str, inputs: list, images: int, repeats: int) -> dict:
    pipeline = build_augmentation(preset, size=OUTPUT_SIZE, seed=SEED, resize_mode=resize_mode)
    for i in range(WARMUP_IMAGES):
        image, boxes, labels = inputs[i % len(inputs)]
        pipeline(image=image, bboxes=boxes, labels=labels)
    best, kept = float("inf"), 0
    for _ in range(repeats):
        kept = 0
        start = time.perf_counter()
        for i in range(images):
            image, boxes, labels = inputs[i % len(inputs)]
            kept += len(pipeline(image=image, bboxes=boxes, labels=labels)["labels"])
        best = min(best, time.perf_counter() - start)
    return {"preset": preset, "resize_mode": resize_mode, "images": images, "repeats": repeats,
            "best_seconds": round(best, 3), "images_per_s": round(images / best, 1),
            "ms_per_image": round(1000 * best / images, 3), "boxes_kept_per_image": round(kept / images, 2)}


def main() -> None:
    args = parse_args()
    cv2.setNumThreads(args.threads)
    inputs = make_inputs(np.random.default_rng(SEED))
    rows = [time_preset(preset, args.resize_mode, inputs, args.images, args.repeats) for preset in PRESETS]
    print(f"{'preset':<8}{'img/s':>10}{'ms/img':>10}{'boxes kept/img':>16}", file=sys.stderr)
    for row in rows:
        print(f"{row['preset']:<8}{row['images_per_s']:>10.1f}{row['ms_per_image']:>10.2f}"
              f"{row['boxes_kept_per_image']:>16.2f}", file=sys.stderr)
    report = {
        "benchmark": "augmentation",
        "input": f"{INPUT_W}x{INPUT_H} uint8 RGB, 1-5 boxes",
        "output": f"{OUTPUT_SIZE[1]}x{OUTPUT_SIZE[0]}",
        "opencv_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "results": rows,
    }
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
