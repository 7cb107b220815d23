"""Benchmark: trainer.metrics (COCO + VOC, vectorised numpy) against pycocotools' COCOeval on the same boxes.

A seeded synthetic set: ``--images`` (5,000) images of 640x480, 1 to 10 ground-truth boxes each over 20
classes; detections are jittered copies of the ground truth (0 to 2 per box, one in ten relabelled, scores
leaning high) plus 0 to 5 false positives per image (scores leaning low); coordinates rounded to 0.01 px
as detector JSON files usually are. Both sides get exactly these boxes (pycocotools as xywh).

What is timed (median of ``--repeats`` runs, each on a fresh object):

* ours: ``EvalData.from_arrays`` (validation, label encoding), ``evaluate_coco`` (all 12 COCO numbers, per
  class too), ``evaluate_voc`` (11-point and all-point AP), and, for the write-back, ``match_dataset`` at
  IoU 0.5, ``confusion_matrix`` and ``evaluate_size_bins``.
* pycocotools: ``COCOeval.evaluate() + accumulate() + summarize()``; building the ground-truth ``COCO``
  index and ``loadRes`` are timed apart (not in its total).
* faster-coco-eval, only when it is already installed (this script installs nothing).

It exits non-zero unless the 12 summary numbers agree with pycocotools to 1e-6, and unless the per-box
TP/FP at IoU 0.5 (area "all", 100 detections) equal pycocotools' ``evalImgs``. Table on stderr, JSON on
stdout or ``--json FILE``.

    .venv/bin/python bench/bench_metrics.py [--images 5000] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.metrics import FP, TP, EvalData, confusion_matrix, evaluate_voc, match_dataset  # noqa: E402
from trainer.metrics_coco import COCO_STATS, evaluate_coco, evaluate_size_bins  # noqa: E402

WIDTH, HEIGHT = 640, 480
NUM_CLASSES = 20
MAX_GT_PER_IMAGE = 10
MAX_FALSE_POSITIVES = 5
RELABEL_RATE = 0.1  # share of jittered copies given a wrong class
JITTER = 0.08  # jitter standard deviation, as a fraction of sqrt(box area)
MIN_SIDE = 2.0  # px; clipped boxes thinner than this are widened
AGREEMENT = 1e-6


def synthetic(num_images: int, seed: int = 0) -> dict:
    """Flat arrays of ground truth and detections (xyxy), fully vectorised."""
    rng = np.random.default_rng(seed)
    gt_count = rng.integers(1, MAX_GT_PER_IMAGE + 1, num_images)
    gt_image = np.repeat(np.arange(num_images), gt_count)
    size = np.exp(rng.uniform(np.log(8), np.log(400), (len(gt_image), 2)))
    size = np.minimum(size, [WIDTH - 1, HEIGHT - 1])
    corner = rng.uniform(0, 1, (len(gt_image), 2)) * ([WIDTH, HEIGHT] - size)
    gt_boxes = np.round(np.c_[corner, corner + size], 2)
    gt_labels = rng.integers(0, NUM_CLASSES, len(gt_image))

    copies = rng.choice(3, len(gt_image), p=[0.15, 0.7, 0.15])
    source = np.repeat(np.arange(len(gt_image)), copies)
    scale = np.sqrt(size[source].prod(axis=1))[:, None]
    moved = gt_boxes[source] + rng.normal(0, JITTER, (len(source), 4)) * scale
    relabel = rng.random(len(source)) < RELABEL_RATE
    copy_labels = np.where(relabel, rng.integers(0, NUM_CLASSES, len(source)), gt_labels[source])
    fp_count = rng.integers(0, MAX_FALSE_POSITIVES + 1, num_images)
    fp_image = np.repeat(np.arange(num_images), fp_count)
    fp_size = np.exp(rng.uniform(np.log(8), np.log(300), (len(fp_image), 2)))
    fp_corner = rng.uniform(0, 1, (len(fp_image), 2)) * ([WIDTH, HEIGHT] - fp_size)
    det_image = np.r_[gt_image[source], fp_image]
    det_boxes = np.r_[moved, np.c_[fp_corner, fp_corner + fp_size]]
    det_boxes = np.c_[np.clip(np.minimum(det_boxes[:, :2], det_boxes[:, 2:]), 0, [WIDTH, HEIGHT]),
                      np.clip(np.maximum(det_boxes[:, :2], det_boxes[:, 2:]), 0, [WIDTH, HEIGHT])]
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + MIN_SIDE)
    order = np.argsort(det_image, kind="stable")  # detections grouped by image, as a detector writes them
    return {"num_images": num_images, "gt_image": gt_image, "gt_boxes": gt_boxes, "gt_labels": gt_labels,
            "det_image": det_image[order], "det_boxes": np.round(det_boxes[order], 2),
            "det_scores": np.round(np.r_[rng.beta(5, 2, len(source)), rng.beta(2, 5, len(fp_image))][order],
                                   4),
            "det_labels": np.r_[copy_labels, rng.integers(0, NUM_CLASSES, len(fp_image))][order]}


def as_coco(arrays: dict) -> tuple[dict, list]:
    def xywh(boxes):
        return np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]].tolist()

    images = [{"id": i + 1, "width": WIDTH, "height": HEIGHT} for i in range(arrays["num_images"])]
    gt_boxes = xywh(arrays["gt_boxes"])
    annotations = [{"id": n + 1, "image_id": int(i) + 1, "category_id": int(k) + 1, "bbox": b,
                    "area": b[2] * b[3], "iscrowd": 0}
                   for n, (i, k, b) in enumerate(zip(arrays["gt_image"], arrays["gt_labels"], gt_boxes))]
    results = [{"image_id": int(i) + 1, "category_id": int(k) + 1, "bbox": b, "score": float(s)}
               for i, k, b, s in zip(arrays["det_image"], arrays["det_labels"], xywh(arrays["det_boxes"]),
                                     arrays["det_scores"])]
    categories = [{"id": k + 1, "name": f"class{k}"} for k in range(NUM_CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


CPU_TIMES: dict[str, float] = {}  # step -> median process CPU seconds (robust when the machine is shared)


def timed(function, repeats: int, name: str):
    """Median wall seconds of ``repeats`` calls (CPU seconds go to CPU_TIMES), and the last value."""
    times, cpu, value = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES[name] = round(statistics.median(cpu), 4)
    return statistics.median(times), value


def run_ours(arrays: dict, repeats: int) -> dict:
    sizes = np.tile([WIDTH, HEIGHT], (arrays["num_images"], 1))
    build_s, data = timed(lambda: EvalData.from_arrays(classes=range(NUM_CLASSES), image_sizes=sizes,
                                                       **arrays), repeats, "ours_build")
    coco_s, coco = timed(lambda: evaluate_coco(data), repeats, "ours_coco")
    voc_s, voc = timed(lambda: evaluate_voc(data), repeats, "ours_voc")
    match_s, matches = timed(lambda: match_dataset(data, iou_threshold=0.5, max_dets=100), repeats,
                                     "ours_match_iou50")
    confusion_s, confusion = timed(lambda: confusion_matrix(data, score_threshold=0.5), repeats,
                                         "ours_confusion")
    bins_s, bins = timed(lambda: evaluate_size_bins(data), repeats, "ours_size_bins")
    return {"data": data, "coco": coco, "voc": voc, "matches": matches, "confusion": confusion, "bins": bins,
            "seconds": {"build": build_s, "coco": coco_s, "voc": voc_s, "coco_plus_voc": coco_s + voc_s,
                        "match_iou50": match_s, "confusion": confusion_s, "size_bins": bins_s}}


def run_pycocotools(gt_json: dict, results: list, repeats: int) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_json))
        gt.createIndex()
        dt = gt.loadRes(json.loads(json.dumps(results)))
        load_s = time.perf_counter() - start

        def evaluate():
            evaluator = COCOeval(gt, dt, "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            return evaluator

        eval_s, evaluator = timed(evaluate, repeats, "pycocotools_evaluate_accumulate_summarize")
    return {"evaluator": evaluator, "seconds": {"load": load_s, "evaluate_accumulate_summarize": eval_s}}


def run_faster_coco_eval(gt_json: dict, results: list, repeats: int) -> dict | None:
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json.loads(json.dumps(gt_json)))
        dt = gt.loadRes(json.loads(json.dumps(results)))

        def evaluate():
            evaluator = COCOeval_faster(gt, dt, "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            return evaluator

        eval_s, evaluator = timed(evaluate, repeats, "faster_coco_eval")
    return {"stats": np.asarray(evaluator.stats[:12]), "seconds": eval_s}


def reference_status(evaluator, num_dets: int) -> np.ndarray:
    """pycocotools' TP (1) / FP (0) / ignored (-1) per detection at IoU 0.5, area 'all', maxDets 100."""
    status = np.full(num_dets, -1)
    for e in evaluator.evalImgs:
        if e is not None and e["aRng"] == evaluator.params.areaRng[0]:
            ids = np.asarray(e["dtIds"], dtype=int) - 1
            status[ids] = np.where(e["dtIgnore"][0].astype(bool), -1, np.where(e["dtMatches"][0] > 0, TP, FP))
    return status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    arrays = synthetic(args.images, args.seed)
    gt_json, results = as_coco(arrays)
    ours = run_ours(arrays, args.repeats)
    reference = run_pycocotools(gt_json, results, args.repeats)
    faster = run_faster_coco_eval(gt_json, results, args.repeats)

    stats, expected = ours["coco"].stats_array, np.asarray(reference["evaluator"].stats)
    difference = float(np.abs(stats - expected).max())
    same_boxes = bool((ours["matches"].det_status == reference_status(reference["evaluator"],
                                                                      len(results))).all())
    ours_s = ours["seconds"]["coco_plus_voc"]
    pycoco_s = reference["seconds"]["evaluate_accumulate_summarize"]
    result = {
        "images": args.images, "gt_boxes": len(gt_json["annotations"]), "detections": len(results),
        "classes": NUM_CLASSES, "repeats": args.repeats, "seed": args.seed,
        "ours_s": {k: round(v, 4) for k, v in ours["seconds"].items()},
        "pycocotools_s": {k: round(v, 4) for k, v in reference["seconds"].items()},
        "cpu_s": CPU_TIMES,
        "faster_coco_eval_s": round(faster["seconds"], 4) if faster else "not installed",
        "speedup_coco_plus_voc_vs_pycocotools": round(pycoco_s / ours_s, 1),
        "speedup_coco_only_vs_pycocotools": round(pycoco_s / ours["seconds"]["coco"], 1),
        "coco_stats": {name: round(float(v), 6) for name, v in zip(COCO_STATS, stats)},
        "max_abs_difference_vs_pycocotools": difference,
        "faster_coco_eval_max_abs_difference": (float(np.abs(faster["stats"] - expected).max())
                                                if faster else None),
        "per_box_tp_fp_equal_to_pycocotools": same_boxes,
        "tp_fp_fn_at_iou50": [int((ours["matches"].det_status == TP).sum()),
                              int((ours["matches"].det_status == FP).sum()),
                              int((ours["matches"].gt_status == 0).sum())],
        "voc_map_11point": round(ours["voc"].mean_ap_11point, 6),
        "voc_map_all_point": round(ours["voc"].mean_ap_all_point, 6),
        "wrong_detections_at_0.5": ours["confusion"].wrong,
        "machine": {"cpus": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "numpy": np.__version__,
                    "pycocotools": _version("pycocotools")},
    }
    print_table(result)
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n") if args.json else print(text)
    if difference > AGREEMENT or not same_boxes:
        sys.exit(f"disagreement with pycocotools: max |diff| {difference:g}, per-box equal: {same_boxes}")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def print_table(result: dict) -> None:
    ours, pycoco = result["ours_s"], result["pycocotools_s"]
    rows = [("ours: EvalData.from_arrays", ours["build"]), ("ours: evaluate_coco", ours["coco"]),
            ("ours: evaluate_voc", ours["voc"]), ("ours: COCO + VOC", ours["coco_plus_voc"]),
            ("ours: match_dataset (IoU .5)", ours["match_iou50"]),
            ("ours: confusion_matrix", ours["confusion"]),
            ("ours: evaluate_size_bins", ours["size_bins"]),
            ("pycocotools: COCO index + loadRes", pycoco["load"]),
            ("pycocotools: evaluate+accumulate+summarize", pycoco["evaluate_accumulate_summarize"])]
    if isinstance(result["faster_coco_eval_s"], float):
        rows.append(("faster-coco-eval: evaluate+accumulate+summarize", result["faster_coco_eval_s"]))
    out = sys.stderr
    print(f"{result['images']:,} images, {result['gt_boxes']:,} ground-truth boxes, "
          f"{result['detections']:,} detections, {result['classes']} classes", file=out)
    print(f"{'step':<50} {'seconds':>9}", file=out)
    for name, seconds in rows:
        print(f"{name:<50} {seconds:>9.3f}", file=out)
    faster = result["faster_coco_eval_s"]
    print(f"speed-up vs pycocotools: COCO + VOC {result['speedup_coco_plus_voc_vs_pycocotools']}x, "
          f"COCO alone {result['speedup_coco_only_vs_pycocotools']}x; faster-coco-eval: "
          f"{'timed above' if isinstance(faster, float) else faster}", file=out)
    print(f"max |ours - pycocotools| over the 12 numbers: {result['max_abs_difference_vs_pycocotools']:.2e}; "
          f"per-box TP/FP equal: {result['per_box_tp_fp_equal_to_pycocotools']}", file=out)
    print("COCO: " + ", ".join(f"{k} {v:.4f}" for k, v in result["coco_stats"].items()), file=out)


if __name__ == "__main__":
    main()
