"""Benchmark: KL-divergence class rebalancing (curate.balance_opt) against its relaxation bound, random
sampling and per-class capping, plus sampling weights against LVIS repeat factors.

Datasets: a seeded synthetic long tail of 100,000 images x 100 classes (Zipf class frequencies with
exponent 1.1, 1-4 classes and 1-10 boxes per image), and the real BelgaLogos annotations
(../shared/data/belgalogos-gt/qset3_internal_and_local.gt, every box counted, "junk" ones included;
skipped with the reason when absent). For budgets of 10/25/50% of the images: our KL and wall/CPU time
(best of --repeats, other processes only slow a run down), the certified bound (balance_relax), the
integrality gap (ours - bound, absolute and relative to the bound), random and capped KL at the same
budget. Then KL of the expected distribution under sampling weights, LVIS repeat factors and uniform
sampling. Table on stderr, JSON on stdout or --json FILE.

    .venv/bin/python bench/bench_balance.py [--images 100000] [--classes 100] [--repeats 3]
        [--temperature T] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curate.balance_compare import (capped_subset, random_subset, repeat_factors,  # noqa: E402
                                    sampling_weights, weighted_kl)
from curate.balance_opt import relaxation_bound, select_subset, target_distribution  # noqa: E402

BELGA = Path(__file__).resolve().parents[2] / "shared" / "data" / "belgalogos-gt" / \
    "qset3_internal_and_local.gt"
FRACTIONS = (0.10, 0.25, 0.50)
ZIPF_EXPONENT = 1.1  # class frequency ~ 1 / rank^1.1: the head class is ~150x the tail at 100 classes
CLASSES_PER_IMAGE = (1, 4)  # drawn per image (with replacement, so repeats merge)
BOXES_PER_IMAGE = (1, 10)
SEED = 0
LVIS_STRONG = 0.1  # a repeat-factor threshold far above LVIS's 0.001, to show its best case too


def synthetic_counts(n_images: int, n_classes: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, n_classes + 1) ** ZIPF_EXPONENT
    slots = rng.choice(n_classes, size=(n_images, CLASSES_PER_IMAGE[1]), p=freq / freq.sum())
    per_image = rng.integers(CLASSES_PER_IMAGE[0], CLASSES_PER_IMAGE[1] + 1, n_images)
    boxes = rng.integers(BOXES_PER_IMAGE[0], BOXES_PER_IMAGE[1] + 1, n_images)
    image = np.repeat(np.arange(n_images), boxes)
    slot = (rng.random(image.size) * per_image[image]).astype(int)
    counts = np.zeros((n_images, n_classes), np.int64)
    np.add.at(counts, (image, slots[image, slot]), 1)
    return counts


def belga_counts(path: Path) -> tuple[np.ndarray, list[str]]:
    """Boxes per (image, brand) from the tab-separated `id brand image type ok x1 y1 x2 y2` lines."""
    per_image: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) >= 3:
            per_image[fields[2]][fields[1]] += 1
    brands = sorted({b for boxes in per_image.values() for b in boxes})
    column = {b: j for j, b in enumerate(brands)}
    counts = np.zeros((len(per_image), len(brands)), np.int64)
    for i, boxes in enumerate(per_image.values()):
        for brand, n in boxes.items():
            counts[i, column[brand]] = n
    return counts, brands


def timed(fn, repeats: int):
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, min(walls), min(cpus)


def bench_dataset(name: str, counts: np.ndarray, repeats: int, temperature: float | None) -> dict:
    target = (target_distribution(counts.sum(axis=0), "uniform") if temperature is None else
              target_distribution(counts.sum(axis=0), "tempered", temperature=temperature))
    rows = []
    for fraction in FRACTIONS:
        budget = int(round(fraction * int((counts.sum(axis=1) > 0).sum())))
        ours, wall, cpu = timed(lambda: select_subset(counts, target, budget, seed=SEED), repeats)
        bound, bound_wall, _ = timed(lambda: relaxation_bound(counts, target, budget), 1)
        gap = ours.kl - bound.bound
        sample = random_subset(counts, target, budget, seed=SEED)
        rows.append({
            "fraction": fraction, "budget_images": budget, "ours_kl": ours.kl,
            "ours_instances": ours.instances, "ours_wall_s": wall, "ours_cpu_s": cpu,
            "bound": bound.bound, "relaxed_kl": bound.relaxed_kl, "bound_wall_s": bound_wall,
            "gap_abs": gap, "gap_rel": gap / bound.bound if bound.bound > 0 else None,
            "random_kl": sample.kl,
            "random_classes_lost": int(((sample.class_counts == 0) & (target > 0)).sum()),
            "capped_kl": capped_subset(counts, target, budget, seed=SEED).kl,
        })
    weights, weights_wall, _ = timed(lambda: sampling_weights(counts, target), 1)
    positive = weights[counts.sum(axis=1) > 0]
    return {
        "dataset": name, "images": int(len(counts)), "classes": int(counts.shape[1]),
        "target": "uniform" if temperature is None else f"tempered t={temperature}",
        "instances": int(counts.sum()), "class_totals_min_max": [int(counts.sum(axis=0).min()),
                                                                  int(counts.sum(axis=0).max())],
        "kl_all_kept": weighted_kl(counts, target, np.ones(len(counts))),
        "subsets": rows,
        "weights": {
            "sampling_weights_kl": weighted_kl(counts, target, weights), "wall_s": weights_wall,
            "max_weight": float(positive.max()), "effective_sample_fraction":
                float(positive.sum() ** 2 / (positive ** 2).sum() / positive.size),
            "repeat_factors_kl": weighted_kl(counts, target, repeat_factors(counts)),
            f"repeat_factors_t{LVIS_STRONG}_kl": weighted_kl(counts, target,
                                                            repeat_factors(counts, LVIS_STRONG)),
            "uniform_kl": weighted_kl(counts, target, np.ones(len(counts))),
        },
    }


def print_table(report: dict) -> None:
    out = sys.stderr
    for data in report["datasets"]:
        if "skipped" in data:
            print(f"\n{data['dataset']}: skipped ({data['skipped']})", file=out)
            continue
        print(f"\n{data['dataset']}: {data['images']:,} images, {data['classes']} classes, "
              f"{data['instances']:,} boxes; {data['target']} target; KL with everything kept "
              f"{data['kl_all_kept']:.4f} nats", file=out)
        print(f"{'kept':>5} {'ours KL':>10} {'bound':>10} {'gap':>9} {'gap rel':>8} {'random':>13} "
              f"{'capped':>8} {'wall s':>7} {'cpu s':>6}", file=out)
        for r in data["subsets"]:
            rel = f"{100 * r['gap_rel']:.3f}%" if r["gap_rel"] is not None else "n/a"
            rand = (f"{r['random_kl']:.4f}" if r["random_classes_lost"] == 0
                    else f"inf({r['random_classes_lost']} lost)")
            print(f"{r['fraction']:>5.0%} {r['ours_kl']:>10.6f} {r['bound']:>10.6f} {r['gap_abs']:>9.2e} "
                  f"{rel:>8} {rand:>13} {r['capped_kl']:>8.4f} {r['ours_wall_s']:>7.2f} "
                  f"{r['ours_cpu_s']:>6.2f}", file=out)
        w = data["weights"]
        print(f"weights (no data dropped): sampling_weights {w['sampling_weights_kl']:.2e} "
              f"({w['wall_s']:.2f} s, max weight {w['max_weight']:.1f}, effective sample "
              f"{w['effective_sample_fraction']:.0%}); repeat factors t=0.001 "
              f"{w['repeat_factors_kl']:.4f}, t={LVIS_STRONG} {w[f'repeat_factors_t{LVIS_STRONG}_kl']:.4f}; "
              f"uniform {w['uniform_kl']:.4f}", file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of our selection (best kept)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="tempered target q_c ~ n_c^t instead of uniform")
    parser.add_argument("--json", type=Path, default=None, help="write the results here, not stdout")
    args = parser.parse_args()
    import scipy

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "scipy": scipy.__version__,
                    "load_average_at_start": list(os.getloadavg())},
        "datasets": [bench_dataset(f"synthetic Zipf {args.images:,} x {args.classes}",
                                   synthetic_counts(args.images, args.classes), args.repeats,
                                   args.temperature)],
    }
    if BELGA.is_file():
        counts, _ = belga_counts(BELGA)
        report["datasets"].append(bench_dataset("BelgaLogos (qset3_internal_and_local.gt)", counts,
                                                args.repeats, args.temperature))
    else:
        report["datasets"].append({"dataset": "BelgaLogos", "skipped": f"{BELGA} not found"})
    print_table(report)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
