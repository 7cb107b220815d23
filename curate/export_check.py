"""Checking an exported model against its torch original: the same detections, timing, mAP.

Check images come from a folder (LabelImg XML beside an image, same stem, is its ground truth) or from
the run's own manifest (``RUN/manifest.jsonl``, written by ``curate train``: the validation split, with its
ground truth). Detections are compared as sets, order-free: each torch detection needs an ONNX one with
the same label, every box coordinate within :data:`BOX_TOLERANCE` and the score within
:data:`SCORE_TOLERANCE`. A detection present on one side only is tolerated when its score lies within
:data:`SCORE_TOLERANCE` of the score threshold (float rounding may put it on either side), and so is a
pair of one-sided detections with the same label and score (a tie, broken differently by each runtime).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from curate.errors import CurateError
from curate.export_runtime import Detections, NetworkInput, to_image_pixels

BOX_TOLERANCE = 1e-4  # relative coordinates: 0.03 px at 300 px; float32 decode differs by ~1e-6
SCORE_TOLERANCE = 1e-4
MANIFEST_SPLITS = ("val", "test", "train")  # the first one the run's manifest has is checked


@dataclass(frozen=True)
class CheckImage:
    path: Path
    gt_boxes: np.ndarray | None = None  # [G, 4] absolute pixel edges; None: no ground truth
    gt_labels: tuple[str, ...] = ()


@dataclass
class Agreement:
    images: int = 0
    detections: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    borderline: int = 0  # on one side only, score within SCORE_TOLERANCE of the threshold
    ties: int = 0  # pairs of other boxes with equal scores, one kept by each runtime
    failures: list[str] = field(default_factory=list)  # "image: reason"

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"images": self.images, "detections": self.detections, "max_box_diff": self.max_box_diff,
                "max_score_diff": self.max_score_diff, "borderline": self.borderline, "ties": self.ties,
                "ok": self.ok,
                "failures": self.failures[:20], "box_tolerance": BOX_TOLERANCE,
                "score_tolerance": SCORE_TOLERANCE}


def images_from_folder(folder: Path, limit: int) -> list[CheckImage]:
    from curate.formats.files import is_image_name, walk_files

    if not Path(folder).is_dir():
        raise CurateError(f"--check-images {folder}: not a folder; fix: pass a folder of images")
    images = [p for p in walk_files(Path(folder)) if is_image_name(p.name)][:limit]
    if not images:
        raise CurateError(f"--check-images {folder}: no images found; fix: pass a folder holding .jpg/.png files")
    return [_with_labelimg_truth(p) for p in images]


def _with_labelimg_truth(image: Path) -> CheckImage:
    from curate.formats.labelimg import CONVENTION
    from curate.formats.voc_xml import read_voc_xml

    xml = image.with_suffix(".xml")
    if not xml.is_file():
        return CheckImage(image)
    ann = read_voc_xml(xml, CONVENTION)
    boxes = np.array([b.box for b in ann.boxes], dtype=np.float64).reshape(-1, 4)
    return CheckImage(image, boxes, tuple(b.label for b in ann.boxes))


def images_from_manifest(run_dir: Path, limit: int, splits: Sequence[str] = MANIFEST_SPLITS) -> list[CheckImage]:
    path = Path(run_dir) / "manifest.jsonl"
    if not path.is_file():
        raise CurateError(f"{path}: missing, so there are no check images; fix: pass --check-images FOLDER")
    records = [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]
    for split in splits:
        chosen = [r for r in records if r["split"] == split and Path(r["filepath"]).is_file()][:limit]
        if chosen:
            return [CheckImage(Path(r["filepath"]), np.array(r["boxes"], dtype=np.float64).reshape(-1, 4),
                               tuple(r["labels"])) for r in chosen]
    raise CurateError(f"{path}: none of its images is on disk; fix: pass --check-images FOLDER")


def compare(reference: Sequence[Detections], candidate: Sequence[Detections], names: Sequence[str], *,
            score_threshold: float) -> Agreement:
    """Torch (``reference``) against ONNX (``candidate``), image by image."""
    agreement = Agreement(images=len(reference))
    for name, ref, cand in zip(names, reference, candidate):
        agreement.detections += len(ref.scores)
        unmatched_ref, unmatched_cand = _match_exactly(ref, cand, agreement)
        unmatched_ref, unmatched_cand = _pair_ties(ref, cand, unmatched_ref, unmatched_cand, agreement)
        for side, dets, left in (("torch", ref, unmatched_ref), ("onnx", cand, unmatched_cand)):
            for i in left:
                if abs(float(dets.scores[i]) - score_threshold) <= SCORE_TOLERANCE:
                    agreement.borderline += 1
                else:
                    agreement.failures.append(f"{name}: {side} only: label {int(dets.labels[i])} score "
                                              f"{float(dets.scores[i]):.5f} box {np.round(dets.boxes[i], 4).tolist()}")
    return agreement


def _pair_ties(ref: Detections, cand: Detections, left_ref: list[int], left_cand: list[int],
               agreement: Agreement) -> tuple[list[int], list[int]]:
    """Pairs a torch-only and an ONNX-only detection of equal score: among boxes of equal score, which one
    top-k and NMS keep is each runtime's own tie-break (saturated scores of 1.0, an untrained head's uniform
    ones), and either answer is right. The same box under another label is never a tie: that is a wrong
    label."""
    still_ref, free = [], list(left_cand)
    for i in left_ref:
        tied = [j for j in free if abs(float(cand.scores[j] - ref.scores[i])) <= SCORE_TOLERANCE
                and (cand.labels[j] == ref.labels[i] or np.abs(cand.boxes[j] - ref.boxes[i]).max() > BOX_TOLERANCE)]
        if tied:
            free.remove(tied[0])
            agreement.ties += 1
        else:
            still_ref.append(i)
    return still_ref, free


def _match_exactly(ref: Detections, cand: Detections, agreement: Agreement) -> tuple[list[int], list[int]]:
    free = list(range(len(cand.scores)))
    unmatched = []
    for i in range(len(ref.scores)):
        box_diff = [np.abs(cand.boxes[j] - ref.boxes[i]).max() for j in free]
        score_diff = [abs(float(cand.scores[j] - ref.scores[i])) for j in free]
        fits = [k for k, j in enumerate(free) if cand.labels[j] == ref.labels[i]
                and box_diff[k] <= BOX_TOLERANCE and score_diff[k] <= SCORE_TOLERANCE]
        if not fits:
            unmatched.append(i)
            continue
        best = min(fits, key=lambda k: (box_diff[k], score_diff[k]))
        agreement.max_box_diff = max(agreement.max_box_diff, float(box_diff[best]))
        agreement.max_score_diff = max(agreement.max_score_diff, float(score_diff[best]))
        free.pop(best)
    return unmatched, free


def prepare_inputs(images: Sequence[CheckImage], network_input: NetworkInput) -> list[tuple[np.ndarray, tuple]]:
    return [network_input(image.path) for image in images]


def detect_all(detect: Callable[[np.ndarray], Detections], inputs) -> list[Detections]:
    return [detect(pixels) for pixels, _ in inputs]


def median_ms(models: dict[str, Callable[[np.ndarray], Detections]], inputs, *, warmup: int,
              runs: int) -> dict[str, float]:
    """Median wall time (ms) of one call per model at batch 1, after ``warmup`` calls each. The models take
    turns on the same input in every round, so on a shared machine they all see the same load."""
    for k in range(warmup):
        for detect in models.values():
            detect(inputs[k % len(inputs)][0])
    times: dict[str, list[float]] = {name: [] for name in models}
    for k in range(runs):
        for name, detect in models.items():
            start = time.perf_counter()
            detect(inputs[k % len(inputs)][0])
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000.0 for name, values in times.items()}


def has_ground_truth(images: Sequence[CheckImage]) -> bool:
    return any(image.gt_boxes is not None for image in images)


def voc_map(images: Sequence[CheckImage], inputs, detections: Sequence[Detections], classes: Sequence[str],
            spec) -> float | None:
    """VOC mAP@0.5 (all-point) in original pixels over the images with ground truth; ground-truth labels
    outside the model's classes are left out. None when no image has ground truth."""
    from trainer.metrics import EvalData, evaluate_voc

    index = {name: i for i, name in enumerate(classes)}
    truths, found, sizes = [], [], []
    for image, (_, size), dets in zip(images, inputs, detections):
        if image.gt_boxes is None:
            continue
        known = [k for k, label in enumerate(image.gt_labels) if label in index]
        truths.append({"boxes": image.gt_boxes[known].reshape(-1, 4),
                       "labels": np.array([index[image.gt_labels[k]] for k in known], dtype=np.int64)})
        found.append({"boxes": to_image_pixels(dets.boxes, size, spec), "scores": dets.scores,
                      "labels": dets.labels})
        sizes.append(size)
    if not truths:
        return None
    data = EvalData.from_images(truths, found, classes=list(range(len(classes))), image_sizes=sizes)
    return float(evaluate_voc(data).mean_ap_all_point)
