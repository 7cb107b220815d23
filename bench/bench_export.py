"""Benchmark: a run's SSD exported to ONNX (curate.export.export_run) against torch eager, float and int8.

    bench/bench_export.py RUN IMAGES [--runs 100] [--threads 1 2] [--limit 200] [--json FILE]

For each thread count, one export at the deployment threshold (``--score-threshold``, default 0.3) with
``--quantize int8``, checked and timed on up to ``--limit`` images of IMAGES: ONNX Runtime vs torch eager per
image at batch 1 (median of ``--runs`` calls after 5 warm-up calls; normalise + network + decode + top-k +
NMS, not the resize, which both share), the detection check (torch = ONNX), sizes, and how many float
detections each int8 model still finds. Then one more export at ``--map-threshold`` (0.01, as
``curate evaluate``) checked on the run's own validation split (RUN/manifest.jsonl) for VOC mAP@0.5 of
torch, ONNX and both int8 models.

Table on stderr, JSON on stdout or ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see trainer/__init__.py: spinning OpenMP threads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.export import ExportSettings, export_run  # noqa: E402


def timed_export(run: Path, images: Path, out: Path, args, threads: int) -> dict:
    settings = ExportSettings(score_threshold=args.score_threshold, quantize="int8", check_images=images,
                              check_limit=args.limit, timing_runs=args.runs, threads=threads)
    return export_run(run, out, settings)


def map_export(run: Path, out: Path, args) -> dict:
    settings = ExportSettings(score_threshold=args.map_threshold, quantize="int8", timing_runs=5,
                              threads=1, check_limit=10_000)
    return export_run(run, out, settings)


def table(results: dict) -> list[str]:
    lines = ["threads | torch eager ms | ORT float ms | speedup | int8 dyn ms | int8 static ms | check",
             "---|---|---|---|---|---|---"]
    for threads, r in results["timing"].items():
        ms, q = r["ms_per_image"], r["quantized"]
        lines.append(f"{threads} | {ms['torch_eager']:.2f} | {ms['onnx_runtime']:.2f} | {r['speedup_vs_torch']:.1f}x | "
                     f"{q['dynamic']['ms_per_image']:.2f} | {q['static']['ms_per_image']:.2f} | "
                     f"{r['check']['detections']} dets on {r['check']['images']} images equal "
                     f"(max box diff {r['check']['max_box_diff']:.1e})")
    first = next(iter(results["timing"].values()))
    sizes = first["size_bytes"]
    lines.append(f"size: checkpoint {sizes['checkpoint'] / 1e6:.2f} MB, ONNX {sizes['onnx'] / 1e6:.2f} MB, int8 "
                 f"dynamic {first['quantized']['dynamic']['size_bytes'] / 1e6:.2f} MB, static "
                 f"{first['quantized']['static']['size_bytes'] / 1e6:.2f} MB")
    for mode, q in first["quantized"].items():
        a = q["agreement_with_float"]
        lines.append(f"int8 {mode}: finds {a['float_detections_found']}/{a['float_detections']} float detections "
                     f"(same label, IoU >= 0.5), mean |score change| {a['mean_abs_score_change']:.3f}")
    m = results["map"]
    if m.get("voc_map50"):
        voc, q = m["voc_map50"], m["quantized"]
        lines.append(f"VOC mAP@0.5 (score > {voc['at_score_threshold']}, {voc['images']} val images): torch "
                     f"{voc['torch']:.4f}, ONNX {voc['onnx']:.4f}, int8 dynamic {q['dynamic']['voc_map50']:.4f}, "
                     f"int8 static {q['static']['voc_map50']:.4f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--score-threshold", type=float, default=0.3)
    parser.add_argument("--map-threshold", type=float, default=0.01)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                               "load_average": os.getloadavg()},
                   "timing": {t: timed_export(args.run, args.images, Path(tmp) / f"t{t}.onnx", args, t)
                              for t in args.threads},
                   "map": map_export(args.run, Path(tmp) / "map.onnx", args)}
    for line in table(results):
        print(line, file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
