"""Checking an exported model against its torch original: the same detections, timing, mAP.

Check images come from a folder (LabelImg XML beside an image, same stem, is its ground truth) or from
the run's own manifest (``RUN/manifest.jsonl``, written by ``curate train``: the validation split, with its
ground truth). Detections are compared as sets, order-free: each torch detection needs an ONNX one with
the same label, every box coordinate within :data:`BOX_TOLERANCE` and the score within
:data:`SCORE_TOLERANCE`. A detection present on one side only is tolerated in three cases, and fails the
check in every other:

* ``borderline``: its score lies within :data:`SCORE_TOLERANCE` of the score threshold (float rounding may
  put it on either side);
* NMS tie: the other side has a one-sided detection of the same label and equal score that overlaps it with
  IoU > ``nms_iou`` (of two such boxes NMS keeps one, and which is each runtime's own tie-break);
* top-k tie: both sides hold exactly ``top_k`` detections, its score equals the lowest kept score of both,
  and the other side has a one-sided detection of that score too (the cut fell inside a run of equal scores).

The same box (within :data:`BOX_TOLERANCE`) with equal scores under two labels, one on each side, is a
wrong label, never a tie.

A LabelImg XML beside a check image that cannot be read leaves that image without ground truth (it is still
checked and timed; mAP leaves it out) and is named in :attr:`CheckImage.note`; AppleDouble ``._*`` files
are not images.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from curate.errors import AnnotationError, CurateError
from curate.export_runtime import Detections, NetworkInput, to_image_pixels

BOX_TOLERANCE = 1e-4  # relative coordinates: 0.03 px at 300 px; float32 decode differs by ~1e-6
SCORE_TOLERANCE = 1e-4
IOU_TOLERANCE = 1e-6  # an NMS tie's IoU, recomputed here in float64, may sit a rounding step off the runtime's
MANIFEST_SPLITS = ("val", "test", "train")  # the first one the run's manifest has is checked


@dataclass(frozen=True)
class CheckImage:
    path: Path
    gt_boxes: np.ndarray | None = None  # [G, 4] absolute pixel edges; None: no ground truth
    gt_labels: tuple[str, ...] = ()
    note: str = ""  # why the image has no ground truth although an XML lies beside it


@dataclass
class Agreement:
    images: int = 0
    detections: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    borderline: int = 0  # on one side only, score within SCORE_TOLERANCE of the threshold
    ties: int = 0  # one-sided detections explained by an NMS or top-k tie (module docstring)
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
    images = [p for p in walk_files(Path(folder))
              if is_image_name(p.name) and not p.name.startswith("._")][:limit]  # ._*: macOS AppleDouble
    if not images:
        raise CurateError(f"--check-images {folder}: no images found; fix: pass a folder holding .jpg/.png files")
    return [_with_labelimg_truth(p) for p in images]


def _with_labelimg_truth(image: Path) -> CheckImage:
    from curate.formats.labelimg import CONVENTION
    from curate.formats.voc_xml import read_voc_xml

    xml = image.with_suffix(".xml")
    if not xml.is_file():
        return CheckImage(image)
    try:
        ann = read_voc_xml(xml, CONVENTION)
    except (AnnotationError, OSError) as error:
        return CheckImage(image, note=f"{xml}: unreadable ({error}); {image.name} has no ground truth")
    if ann.errors:  # a box left out would count its detection as a false positive
        return CheckImage(image, note=f"{xml}: {len(ann.errors)} unreadable object(s) (first: {ann.errors[0]}); "
                                      f"{image.name} has no ground truth")
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
            score_threshold: float, nms_iou: float, top_k: int) -> Agreement:
    """Torch (``reference``) against ONNX (``candidate``), image by image; ``score_threshold``, ``nms_iou`` and
    ``top_k`` are the post-processing both ran with (they decide which one-sided detections are ties)."""
    agreement = Agreement(images=len(reference))
    for name, ref, cand in zip(names, reference, candidate):
        agreement.detections += len(ref.scores)
        left_ref, left_cand = _match_exactly(ref, cand, agreement)
        relabelled = _relabelled(ref, cand, left_ref, left_cand)
        for side, dets, left, other, other_left in (("torch", ref, left_ref, cand, left_cand),
                                                    ("onnx", cand, left_cand, ref, left_ref)):
            for i in left:
                if abs(float(dets.scores[i]) - score_threshold) <= SCORE_TOLERANCE:
                    agreement.borderline += 1
                elif (side, i) not in relabelled and (_nms_tie(dets, i, other, other_left, nms_iou)
                                                      or _top_k_tie(dets, i, other, other_left, top_k)):
                    agreement.ties += 1
                else:
                    reason = " (the same box under another label on the other side)" if (side, i) in relabelled else ""
                    agreement.failures.append(f"{name}: {side} only: label {int(dets.labels[i])} score "
                                              f"{float(dets.scores[i]):.5f} box {np.round(dets.boxes[i], 4).tolist()}"
                                              f"{reason}")
    return agreement


def _same_score(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= SCORE_TOLERANCE


def _relabelled(ref: Detections, cand: Detections, left_ref: list[int], left_cand: list[int]) -> set:
    """One-sided detections whose box and score the other side has, one-sided, under another label."""
    found = set()
    for i in left_ref:
        for j in left_cand:
            if (cand.labels[j] != ref.labels[i] and _same_score(cand.scores[j], ref.scores[i])
                    and np.abs(cand.boxes[j] - ref.boxes[i]).max() <= BOX_TOLERANCE):
                found |= {("torch", i), ("onnx", j)}
    return found


def _nms_tie(dets: Detections, i: int, other: Detections, other_left: list[int], nms_iou: float) -> bool:
    """Detection ``i`` of ``dets`` and a one-sided one of ``other`` are boxes of one label and equal score
    that overlap beyond ``nms_iou``: NMS keeps one of the two, and each runtime chose its own."""
    tied = [j for j in other_left if other.labels[j] == dets.labels[i] and _same_score(other.scores[j], dets.scores[i])]
    return bool(tied) and bool((_iou(dets.boxes[i], other.boxes[tied]) > nms_iou - IOU_TOLERANCE).any())


def _top_k_tie(dets: Detections, i: int, other: Detections, other_left: list[int], top_k: int) -> bool:
    """Both sides are cut at ``top_k`` inside a run of equal scores, and ``i`` is one of those scores: which
    of the tied detections make the cut is each runtime's own tie-break."""
    if len(dets.scores) != top_k or len(other.scores) != top_k:
        return False
    score = dets.scores[i]
    return (_same_score(score, dets.scores.min()) and _same_score(score, other.scores.min())
            and any(_same_score(other.scores[j], score) for j in other_left))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    box, boxes = np.asarray(box, np.float64), np.asarray(boxes, np.float64).reshape(-1, 4)
    width = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    height = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    inter = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


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
