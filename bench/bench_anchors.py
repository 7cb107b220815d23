"""Benchmark: fitting SSD default boxes (curate.anchor_fit) and their grid-aware coverage (curate.anchor_coverage).

(a) Speed: fit_anchor_spec on 1,000,000 synthetic boxes with SSD300's head (k-means on a seeded sample, every box
    assigned, coordinate search and 200 generations of evolution on a 4,000-box sample), target < 5 s; k-means
    alone; coverage of 100,000 boxes by SSD300's 8,732 priors.
(b) Coverage on real training boxes: FlickrLogos-27 (training annotation file; lines repeated with another subset
    number removed; image sizes from the image headers) and voc2012-sample (VOC XML, 1-based: x0 = xmin - 1),
    resized by stretching to 300 x 300. For mobilenet_v2 @ 300 and vgg16 @ 300: "fitted" (same boxes per
    location as the backbone's default, so the same head), "fitted_kmeans_head" (boxes per location decided by
    the k = 12 clusters), the backbone's defaults (trainer.model.default_anchors), the SSD paper's rule on the
    backbone's maps, and torchvision's SSD300 / SSDlite320 boxes on their own grids; plus the ceiling no anchors
    on that grid can beat (curate.anchor_grid.coverage_ceiling). Fits are measured on the boxes they were fitted
    on; the held-out column fits on a seeded 80 % of the images and measures the other 20 % (the fixed priors are
    measured on the same 20 %). A real set that is absent is skipped with a reason.

Table on stderr, JSON on stdout or --json FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curate.anchor_coverage import PriorSet, coverage, model_prior_set, torchvision_default_specs  # noqa: E402
from curate.anchor_fit import fit_anchor_spec, kmeans_iou, resized_box_sizes  # noqa: E402
from curate.anchor_grid import coverage_ceiling  # noqa: E402
from trainer.priors import AnchorSpec  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FLICKRLOGOS = SHARED_DATA / "flickrlogos27" / "flickr_logos_27_dataset"
FLICKRLOGOS_ANNOTATIONS = FLICKRLOGOS / "flickr_logos_27_dataset_training_set_annotation.txt"
FLICKRLOGOS_IMAGES = FLICKRLOGOS / "flickr_logos_27_dataset_images"
VOC_SAMPLE_XML = SHARED_DATA / "voc2012-sample" / "data" / "database" / "gts" / "pascalvoc_format"
MODELS = (("mobilenet_v2", 300), ("vgg16", 300))
SYNTHETIC_BOXES = 1_000_000
COVERAGE_BOXES = 100_000
INPUT_SIDE = 300
HELD_OUT_FRACTION = 0.2  # images
SEED = 0
# synthetic (w, h) clusters in input px with their share of the boxes: logos, text, people, cars
SYNTHETIC_CLUSTERS = ((12, 10, 0.15), (28, 22, 0.25), (60, 30, 0.15), (30, 80, 0.15), (110, 120, 0.2),
                      (220, 150, 0.1))
SYNTHETIC_SPREAD = 0.25  # log-normal sigma of w and h around each cluster
SSD300_BOXES_PER_LOCATION = (4, 6, 6, 6, 4, 4)  # the head size the speed test fits for (SSD300's)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=SYNTHETIC_BOXES, help="synthetic boxes for the speed test")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits; the fastest counts")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, default=None, help="write the results here, not stdout")
    return parser.parse_args()


def synthetic_boxes(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(w, h) px and relative xyxy of ``count`` boxes from SYNTHETIC_CLUSTERS at uniform positions."""
    shapes = np.array([c[:2] for c in SYNTHETIC_CLUSTERS], dtype=np.float64)
    shares = np.array([c[2] for c in SYNTHETIC_CLUSTERS])
    which = rng.choice(len(shapes), size=count, p=shares / shares.sum())
    wh = np.clip(shapes[which] * np.exp(rng.normal(0.0, SYNTHETIC_SPREAD, (count, 2))), 1.0, INPUT_SIDE)
    centres = wh / 2 + rng.random((count, 2)) * (INPUT_SIDE - wh)
    return wh, np.concatenate([centres - wh / 2, centres + wh / 2], axis=1) / INPUT_SIDE


def speed(args: argparse.Namespace, vgg_maps: tuple) -> dict:
    rng = np.random.default_rng(args.seed)
    wh, rel = synthetic_boxes(args.boxes, rng)
    size = (INPUT_SIDE, INPUT_SIDE)
    kmeans_s, fit_s, result = [], [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        kmeans_iou(wh, 2 * len(vgg_maps), seed=args.seed)
        kmeans_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = fit_anchor_spec(wh, feature_map_sizes=vgg_maps, input_size_hw=size, seed=args.seed,
                                 boxes_per_layer=SSD300_BOXES_PER_LOCATION)
        fit_s.append(time.perf_counter() - start)
    ssd300 = model_prior_set("vgg16", size)
    start = time.perf_counter()
    report = coverage(rel[:COVERAGE_BOXES], ssd300.priors())
    coverage_s = time.perf_counter() - start
    fitted = coverage(rel[:COVERAGE_BOXES], PriorSet("fitted", result.spec, size, vgg_maps).priors())
    return {"boxes": args.boxes, "kmeans_k12_seconds": round(min(kmeans_s), 3), "fit_seconds": round(min(fit_s), 3),
            "fit_seconds_all": [round(v, 3) for v in fit_s], "target_seconds": 5.0,
            "coverage_boxes": COVERAGE_BOXES, "coverage_priors": report.num_priors,
            "coverage_seconds": round(coverage_s, 3),
            "synthetic_coverage_ssd300": round(report.overall.coverage, 4),
            "synthetic_coverage_fitted": round(fitted.overall.coverage, 4), "fitted": result.to_dict()}


def read_flickrlogos() -> tuple[list[str], np.ndarray, np.ndarray, list[str]] | str:
    if not FLICKRLOGOS_ANNOTATIONS.is_file():
        return f"FlickrLogos-27 not found at {FLICKRLOGOS_ANNOTATIONS}"
    from PIL import Image

    seen, images, boxes, labels = set(), [], [], []
    for line in FLICKRLOGOS_ANNOTATIONS.read_text().splitlines():
        parts = line.split()
        if len(parts) != 7:
            continue
        image, label, _subset, *corners = parts  # the subset column differs between duplicated lines
        key = (image, label, *corners)
        if key in seen:
            continue
        seen.add(key)
        images.append(image), boxes.append([float(v) for v in corners]), labels.append(label)
    sizes = {}
    for image in sorted(set(images)):
        with Image.open(FLICKRLOGOS_IMAGES / image) as opened:
            sizes[image] = opened.size
    return images, np.array(boxes), np.array([sizes[i] for i in images], dtype=np.float64), labels


def read_voc_sample() -> tuple[list[str], np.ndarray, np.ndarray, list[str]] | str:
    if not VOC_SAMPLE_XML.is_dir():
        return f"voc2012-sample not found at {VOC_SAMPLE_XML}"
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    images, boxes, sizes, labels = [], [], [], []
    for path in sorted(VOC_SAMPLE_XML.glob("*.xml")):
        root = etree.parse(str(path), parser).getroot()
        size = (float(root.findtext("size/width")), float(root.findtext("size/height")))
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            images.append(path.stem), boxes.append([xmin - 1, ymin - 1, xmax, ymax])  # 1-based -> edges
            sizes.append(size), labels.append(obj.findtext("name"))
    return images, np.array(boxes), np.array(sizes), labels


def real_dataset(name: str, data, seed: int) -> dict:
    if isinstance(data, str):
        print(f"skip {name}: {data}", file=sys.stderr)
        return {"skipped": data}
    images, boxes, sizes, labels = data
    size = (INPUT_SIDE, INPUT_SIDE)
    wh = resized_box_sizes(boxes, sizes, input_size_hw=size, resize_mode="stretch")
    corners = np.clip(boxes, 0, np.tile(sizes, 2)) / np.tile(sizes, 2)  # stretch: relative corners unchanged
    degenerate = ~(wh > 0).all(axis=1)
    keep = ~degenerate
    wh, corners, labels = wh[keep], corners[keep], [label for label, k in zip(labels, keep) if k]
    images = [image for image, k in zip(images, keep) if k]
    rng = np.random.default_rng(seed)
    unique_images = sorted(set(images))
    held_images = set(rng.choice(unique_images, int(round(HELD_OUT_FRACTION * len(unique_images))), replace=False))
    held = np.array([image in held_images for image in images])
    out = {"boxes": int(len(wh)), "images": len(unique_images), "degenerate_dropped": int(degenerate.sum()),
           "held_out_boxes": int(held.sum()), "models": {}}
    torchvision_sets = torchvision_default_specs()
    out["torchvision"] = {name: _row(ps, corners, labels, held) for name, ps in torchvision_sets.items()}
    for backbone, side in MODELS:
        default = model_prior_set(backbone, (side, side))
        maps = default.feature_map_sizes
        head = default.spec.boxes_per_location()  # fitted like-for-like: the default's boxes per location
        start = time.perf_counter()
        fit = fit_anchor_spec(wh, feature_map_sizes=maps, input_size_hw=size, seed=seed, boxes_per_layer=head)
        fit_seconds = time.perf_counter() - start
        free = fit_anchor_spec(wh, feature_map_sizes=maps, input_size_hw=size, seed=seed)  # k-means decides
        sets = {"fitted": PriorSet("fitted", fit.spec, size, maps),
                "fitted_kmeans_head": PriorSet("fitted_kmeans_head", free.spec, size, maps),
                "default": default,
                "ssd_paper": PriorSet("ssd_paper", AnchorSpec.ssd_paper(num_layers=len(maps)), size, maps)}
        rows = {key: _row(ps, corners, labels, held) for key, ps in sets.items()}
        for key, boxes_per_layer in (("fitted", head), ("fitted_kmeans_head", None)):
            held_fit = fit_anchor_spec(wh[~held], feature_map_sizes=maps, input_size_hw=size, seed=seed,
                                       boxes_per_layer=boxes_per_layer)
            rows[key]["held_out"] = coverage(corners[held], PriorSet("held", held_fit.spec, size, maps).priors()
                                             ).overall.to_dict()
        ceiling = coverage_ceiling(corners, feature_map_sizes=maps, input_size_hw=size)
        out["models"][f"{backbone}@{side}"] = {"fit_seconds": round(fit_seconds, 3), "fit": fit.to_dict(),
                                                "fit_kmeans_head": free.to_dict(), "ceiling": round(ceiling, 4),
                                                "priors": rows}
    return out


def _row(prior_set: PriorSet, corners: np.ndarray, labels: list[str], held: np.ndarray | None) -> dict:
    priors = prior_set.priors()
    report = coverage(corners, priors, labels=labels)
    row = {"num_priors": report.num_priors, "all": report.overall.to_dict(),
           "per_size": {k: v.to_dict() for k, v in report.per_size.items() if v.count},
           "worst_classes": {str(k): round(v.coverage, 4) for k, v in
                             sorted(report.per_class.items(), key=lambda kv: kv[1].coverage)[:3]}}
    if held is not None:
        row["held_out"] = coverage(corners[held], priors).overall.to_dict()
    return row


def print_table(results: dict) -> None:
    out = sys.stderr
    s = results["speed"]
    print(f"fit on {s['boxes']:,} boxes: {s['fit_seconds']:.2f} s (k-means k=12 alone {s['kmeans_k12_seconds']:.2f} s; "
          f"target < {s['target_seconds']:.0f} s); coverage of {s['coverage_boxes']:,} boxes x "
          f"{s['coverage_priors']:,} priors: {s['coverage_seconds']:.2f} s", file=out)
    for dataset, data in results["datasets"].items():
        if "skipped" in data:
            continue
        print(f"\n{dataset}: {data['boxes']} boxes, {data['images']} images ({data['degenerate_dropped']} boxes "
              f"without area dropped); held-out: {data['held_out_boxes']} boxes", file=out)
        print(f"  {'model':<16} {'priors':<19} {'#priors':>7} {'coverage':>9} {'best IoU':>9} {'pos/GT':>7} "
              f"{'held-out':>9}", file=out)
        rows = [("torchvision", name.removeprefix("torchvision_")[:19], r) for name, r in data["torchvision"].items()]
        rows += [(model, key, r) for model, m in data["models"].items() for key, r in m["priors"].items()]
        for model, key, r in rows:
            a = r["all"]
            print(f"  {model[:16]:<16} {key:<19} {r['num_priors']:>7} {a['coverage']:>9.4f} {a['mean_best_iou']:>9.4f} "
                  f"{a['mean_positives']:>7.2f} {r['held_out']['coverage']:>9.4f}", file=out)
        for model, m in data["models"].items():
            t = m["fit"]["too_small"]
            print(f"  {model}: ceiling (any anchors on this grid) {m['ceiling']:.4f}; too small for the finest "
                  f"layer (stride {t['finest_stride_px'][0]:.1f} px, squares < {t['min_square_side_px']:.1f} px): "
                  f"{t['count']} boxes ({t['fraction']:.1%}); fit {m['fit_seconds']:.2f} s; boxes/location "
                  f"fitted {m['fit']['boxes_per_location']}, k-means {m['fit_kmeans_head']['boxes_per_location']}",
                  file=out)


def main() -> None:
    args = parse_args()
    vgg_maps = model_prior_set("vgg16", (INPUT_SIDE, INPUT_SIDE)).feature_map_sizes
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average": os.getloadavg()},
               "speed": speed(args, vgg_maps),
               "datasets": {"flickrlogos27": real_dataset("flickrlogos27", read_flickrlogos(), args.seed),
                            "voc2012-sample": real_dataset("voc2012-sample", read_voc_sample(), args.seed)}}
    results["machine"]["load_average_end"] = os.getloadavg()
    print_table(results)
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
