"""Benchmark: `curate import` vs FiftyOne's VOCDetectionDataset importer on the same VOC folder.

Both run in one process on a fresh, throw-away FiftyOne database (never the user's), after a warm-up
that starts mongod, with every file already in the page cache. Table on stderr, JSON on stdout/--json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 2.0  # the goal: at least twice FiftyOne's images/s
IMAGE_W, IMAGE_H = 640, 480  # pixels: the synthetic images, checked against curate's stored metadata


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="images in the VOC folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="VOC folder to create or reuse (default: /tmp/curate-bench-voc-N)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the VOC folder and the temporary database afterwards")
    parser.add_argument("--json", type=Path, default=None, help="write the results here, not stdout")
    return parser.parse_args()


_PRIVATE = []  # the private mongod started by isolate_database


def isolate_database() -> Path:
    """Point FiftyOne at an empty private mongod (curate/db_private.py: FiftyOne's own service would
    attach to any running one); must run before fiftyone is imported."""
    from curate.db import embedded_mongod
    from curate.db_private import start_private_mongod

    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
    db_dir = Path(tempfile.mkdtemp(prefix="curate-bench-db-"))
    os.environ["FIFTYONE_DATABASE_DIR"] = str(db_dir)
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    binary = embedded_mongod()
    if binary is not None:
        _PRIVATE.append(start_private_mongod(binary, db_dir))
        os.environ["FIFTYONE_DATABASE_URI"] = _PRIVATE[-1].uri
    return db_dir


def is_complete(folder: Path, n: int) -> bool:
    sets = folder / "ImageSets" / "Main" / "trainval.txt"
    return (sets.is_file() and len(sets.read_text().split()) == n
            and len(list((folder / "Annotations").glob("*.xml"))) == n
            and len(list((folder / "JPEGImages").glob("*.jpg"))) == n)


def prepare_folder(folder: Path, n: int) -> bool:
    """Create the VOC folder unless a complete one is there; True when this run wrote it."""
    if is_complete(folder, n):
        print(f"reusing {folder}", file=sys.stderr)
        return False
    from curate.synth import write_voc_folder
    print(f"writing {n} images to {folder} ...", file=sys.stderr)
    write_voc_folder(folder, n, width=IMAGE_W, height=IMAGE_H, min_boxes=1, max_boxes=5)
    if not is_complete(folder, n):
        sys.exit(f"{folder} holds other files; pass an empty or new --out")
    return True


def stop_database() -> None:
    """Stop the private mongod (or FiftyOne's embedded service) and wait, so its folder can be deleted."""
    fodb = sys.modules.get("fiftyone.core.odm.database")  # None: FiftyOne never started
    if fodb is not None:
        fodb._disconnect()
    while _PRIVATE:
        _PRIVATE.pop().stop()
    service = getattr(fodb, "_db_service", None)
    child = getattr(service, "child", None)
    if getattr(child, "stdin", None) is not None:
        child.stdin.close()  # FiftyOne's service process then terminates mongod and exits
        child.wait(timeout=60)


def warm_file_cache(folder: Path) -> None:
    for path in (p for p in folder.rglob("*") if p.is_file()):
        path.read_bytes()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def machine() -> dict:
    import fiftyone as fo
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": models[0] if models else platform.processor(),
            "python": platform.python_version(), "fiftyone": fo.__version__,
            "database": "embedded mongod, fresh FIFTYONE_DATABASE_DIR"}


def run(folder: Path, n: int) -> dict:
    import fiftyone as fo
    from curate.ingest import import_folder

    if fo.config.database_uri:  # set in ~/.fiftyone/config.json: refuse to touch that server
        sys.exit(f"FiftyOne is configured for {fo.config.database_uri}; refusing to benchmark on it")
    fo.Dataset("curate-bench-warmup").delete()  # mongod start-up counted for neither side
    warm_file_cache(folder)
    report, curate_s = timed(import_folder, folder, dataset_name="curate-bench", fmt="voc", progress=False)
    again, reimport_s = timed(import_folder, folder, dataset_name="curate-bench", fmt="voc", progress=False)
    fo_ds, fo_s = timed(fo.Dataset.from_dir, dataset_dir=str(folder),
                        dataset_type=fo.types.VOCDetectionDataset, name="fiftyone-bench",
                        data_path="JPEGImages", labels_path="Annotations",  # the Pascal VOC layout
                        label_field="ground_truth", progress=False)
    checks = check(fo.load_dataset("curate-bench"), fo_ds, n)
    if again.added or again.updated or again.unchanged != n:
        sys.exit(f"re-import was not a no-op: {again.added} added, {again.updated} updated")
    return {"images": n, "machine": machine(), "checks": checks,
            "curate": {"seconds": curate_s, "images_per_s": n / curate_s, "added": report.added},
            "curate_reimport": {"seconds": reimport_s, "images_per_s": n / reimport_s},
            "fiftyone": {"seconds": fo_s, "images_per_s": n / fo_s},
            "ratio_curate_over_fiftyone": fo_s / curate_s, "target_ratio": TARGET_RATIO,
            "target_met": fo_s / curate_s >= TARGET_RATIO}


def check(curate_ds, fo_ds, n: int) -> dict:
    """Same samples and boxes on both sides; which metadata each importer stored."""
    facts = {}
    for tool, ds in (("curate", curate_ds), ("fiftyone", fo_ds)):
        facts[tool] = {"samples": len(ds), "boxes": ds.count("ground_truth.detections"),
                       "with_width_height": ds.match({"metadata.width": {"$gt": 0}}).count(),
                       "with_size_bytes": ds.count("metadata.size_bytes")}
    cur, fof = facts["curate"], facts["fiftyone"]
    if cur["samples"] != n or fof["samples"] != n or cur["boxes"] != fof["boxes"]:
        sys.exit(f"datasets differ: {facts}")
    sizes = (tuple(curate_ds.distinct("metadata.width")), tuple(curate_ds.distinct("metadata.height")))
    if cur["with_width_height"] != n or cur["with_size_bytes"] != n or sizes != ((IMAGE_W,), (IMAGE_H,)):
        sys.exit(f"curate's samples lack true image sizes: {facts}, sizes {sizes}")
    # FiftyOne copies width/height from each XML's <size>; size_bytes would show it opened the image
    fof["image_files_read"] = fof["with_size_bytes"] > 0
    return facts


def print_table(result: dict) -> None:
    rows = [("curate import", result["curate"]), ("curate re-import", result["curate_reimport"]),
            ("fiftyone VOC importer", result["fiftyone"])]
    fo_rate = result["fiftyone"]["images_per_s"]
    print(f"{'tool':<24}{'seconds':>9}{'images/s':>10}{'ratio vs fiftyone':>19}", file=sys.stderr)
    for name, r in rows:
        rate = r["images_per_s"]
        print(f"{name:<24}{r['seconds']:>9.2f}{rate:>10.0f}{rate / fo_rate:>18.2f}x", file=sys.stderr)
    m = result["machine"]
    print(f"{result['images']} images; {m['nproc']} x {m['cpu']}; Python {m['python']}; "
          f"FiftyOne {m['fiftyone']}; target {TARGET_RATIO}x met: {result['target_met']}", file=sys.stderr)


def main() -> None:
    args = parse_args()
    json_out, sys.stdout = sys.stdout, sys.stderr  # FiftyOne logs to stdout; only the JSON goes there
    db_dir = isolate_database()
    import curate  # noqa: F401  (before fiftyone: sets curate's FiftyOne environment defaults)
    folder = (args.out or Path(tempfile.gettempdir()) / f"curate-bench-voc-{args.images}").resolve()
    created = False
    try:
        created = prepare_folder(folder, args.images)
        result = run(folder, args.images)
    finally:
        if not args.keep:
            stop_database()
            shutil.rmtree(db_dir, ignore_errors=True)
            if created:
                shutil.rmtree(folder, ignore_errors=True)
    print_table(result)
    text = json.dumps(result, indent=2) + "\n"
    if args.json:
        args.json.write_text(text)
    else:
        json_out.write(text)


if __name__ == "__main__":
    main()
