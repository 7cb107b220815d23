"""Benchmark: `curate clean` on a 10,000-image dataset vs the notebook loop a user would write.

The dataset is a synthetic LabelImg folder with a realistic share of defects written into it (degenerate,
outside and tiny boxes, PNG files saved as .jpg, truncated JPEGs). Both sides run on the same FiftyOne
dataset in a throw-away database. The notebook baseline iterates FiftyOne samples, checks boxes and
calls PIL's verify() on every image: what the seeds do by hand, with far fewer rules.

    .venv/bin/python bench/bench_clean.py [--images 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DEFECT_EVERY = 50  # one image in 50 gets a defect: 2%, the order of what real folders hold


def make_folder(folder: Path, n: int) -> Path:
    from curate.synth import add_defects, write_labelimg_folder

    if len(list(folder.glob("*.xml"))) == n:
        return folder
    write_labelimg_folder(folder, n, seed=7, width=320, height=240, max_boxes=4)
    add_defects(folder, every=DEFECT_EVERY, seed=0)
    return folder


def notebook_baseline(dataset) -> tuple[float, int]:
    """What a user writes by hand: loop over samples, check boxes, verify each image with PIL."""
    from PIL import Image

    start, problems = time.perf_counter(), 0
    for sample in dataset.iter_samples():
        for det in (sample.ground_truth.detections if sample.ground_truth else []):
            x, y, w, h = det.bounding_box
            problems += w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > 1 or y + h > 1
        try:
            with Image.open(sample.filepath) as image:
                image.verify()
        except Exception:
            problems += 1
    return time.perf_counter() - start, problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_import import isolate_database, stop_database

    isolate_database()
    import curate  # noqa: F401  (sets FiftyOne environment defaults before fiftyone is imported)
    import fiftyone as fo

    from curate.clean import run_clean
    from curate.ingest import import_path

    folder = make_folder(Path(tempfile.gettempdir()) / f"curate-bench-clean-{args.images}", args.images)
    try:
        import_path(folder, dataset_name="bench-clean", progress=False)
        dataset = fo.load_dataset("bench-clean")
        start = time.perf_counter()
        report = run_clean(dataset, progress=False)
        ours = time.perf_counter() - start
        baseline, baseline_problems = notebook_baseline(dataset)
    finally:
        stop_database()
    result = {"images": args.images, "curate_clean_s": round(ours, 2),
              "curate_images_per_s": round(args.images / ours), "findings": report.counts,
              "notebook_loop_s": round(baseline, 2), "notebook_problems_found": baseline_problems,
              "speedup": round(baseline / ours, 2), "cpus": os.cpu_count(), "load": os.getloadavg()}
    print(f"curate clean: {ours:.1f} s ({args.images / ours:,.0f} images/s), findings {report.counts}",
          file=sys.stderr)
    print(f"notebook loop: {baseline:.1f} s, {baseline_problems} problems; curate {baseline / ours:.1f}x",
          file=sys.stderr)
    text = json.dumps(result, indent=2)
    args.json.write_text(text) if args.json else print(text)


if __name__ == "__main__":
    main()
