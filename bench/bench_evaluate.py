"""Benchmark: `curate evaluate --pred-field` against FiftyOne's ``evaluate_detections(compute_mAP=True)``
on the same 5,000-image dataset, and a check that both wrote identical verdicts.

The dataset: bench_metrics.py's seeded synthetic set (640x480 images, 1 to 10 ground-truth boxes each over
20 classes, jittered and relabelled copies as detections plus false positives), stored as a FiftyOne
dataset with ``ground_truth`` and ``predictions`` in an isolated database (building it is not timed).

Timed, one run each (FiftyOne's takes minutes), in this order:

* FiftyOne: ``dataset.evaluate_detections("predictions", eval_key="fo", compute_mAP=True)``: per-box
  tp/fp/fn, ids, IoU, per-sample counts, COCO mAP over 10 IoU thresholds, the run saved.
* curate: ``evaluate_field(dataset, "predictions", eval_key="cur")``: the same fields and a registered
  FiftyOne evaluation, plus VOC (11-point and all-point) and COCO metrics, size bins, the confusion
  matrix, and the saved failure views.

It exits non-zero unless every per-sample count and every per-box verdict is identical. JSON on stdout.

    .venv/bin/python bench/bench_evaluate.py [--images 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import isolate_database, stop_database  # noqa: E402
from bench_metrics import HEIGHT, WIDTH, synthetic  # noqa: E402


def build_dataset(arrays: dict, name: str):
    import fiftyone as fo

    def detections(image_of, boxes, labels, scores=None):
        per_image = [[] for _ in range(arrays["num_images"])]
        for n, (i, box, label) in enumerate(zip(image_of, boxes, labels)):
            x0, y0, x1, y1 = box
            per_image[i].append(fo.Detection(label=f"class{label}", bounding_box=[
                x0 / WIDTH, y0 / HEIGHT, (x1 - x0) / WIDTH, (y1 - y0) / HEIGHT],
                confidence=None if scores is None else float(scores[n])))
        return per_image

    gts = detections(arrays["gt_image"], arrays["gt_boxes"], arrays["gt_labels"])
    preds = detections(arrays["det_image"], arrays["det_boxes"], arrays["det_labels"], arrays["det_scores"])
    dataset = fo.Dataset(name)
    meta = fo.ImageMetadata(width=WIDTH, height=HEIGHT)
    dataset.add_samples([fo.Sample(filepath=f"/bench/{i:06d}.jpg", metadata=meta,
                                   ground_truth=fo.Detections(detections=g), predictions=fo.Detections(detections=p))
                         for i, (g, p) in enumerate(zip(gts, preds))], progress=False)
    return dataset


def compare(dataset) -> dict:
    """Mismatches between FiftyOne's verdicts (key fo) and ours (key cur)."""
    out = {}
    for suffix in ("tp", "fp", "fn"):
        out[f"sample_{suffix}"] = sum(a != b for a, b in zip(dataset.values(f"fo_{suffix}"),
                                                            dataset.values(f"cur_{suffix}")))
    for field in ("predictions", "ground_truth"):
        theirs = dataset.values(f"{field}.detections.fo", unwind=True)
        ours = dataset.values(f"{field}.detections.cur", unwind=True)
        out[f"{field}_boxes"] = len(theirs)
        out[f"{field}_verdicts"] = sum(a != b for a, b in zip(theirs, ours)) + abs(len(theirs) - len(ours))
        out[f"{field}_ids"] = sum(a != b for a, b in zip(dataset.values(f"{field}.detections.fo_id", unwind=True),
                                                         dataset.values(f"{field}.detections.cur_id", unwind=True)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    db_dir = isolate_database()
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    import curate  # noqa: F401  (before fiftyone: sets curate's FiftyOne environment defaults)
    from curate.evaluate import evaluate_field

    try:
        arrays = synthetic(args.images, args.seed)
        start = time.perf_counter()
        dataset = build_dataset(arrays, "bench-evaluate")
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = dataset.evaluate_detections("predictions", gt_field="ground_truth", eval_key="fo",
                                             compute_mAP=True)
        fiftyone_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = evaluate_field(dataset, "predictions", eval_key="cur")
        curate_s = time.perf_counter() - start
        mismatches = compare(dataset)
    finally:
        stop_database()
    result = {"images": args.images, "gt_boxes": len(arrays["gt_boxes"]), "detections": len(arrays["det_boxes"]),
              "build_dataset_s": round(build_s, 2), "fiftyone_evaluate_detections_s": round(fiftyone_s, 2),
              "curate_evaluate_s": round(curate_s, 2), "speedup": round(fiftyone_s / curate_s, 1),
              "fiftyone_coco_map": theirs.mAP(), "curate_coco_ap": ours["coco"]["AP"],
              "curate_voc_map50": ours["voc_map50_all_point"], "mismatches": mismatches,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
              "database": str(db_dir)}
    print(json.dumps(result, indent=2))
    identical = all(v == 0 for k, v in mismatches.items() if not k.endswith("_boxes"))
    print("identical verdicts" if identical else "VERDICTS DIFFER", file=sys.stderr)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
