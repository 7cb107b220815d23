"""``curate predict MODEL IMAGES/``: pre-annotation, so a person corrects boxes instead of drawing them.

Reads: a run folder (its torch model) or an ``.onnx`` written by ``curate export`` (with its sidecar); every
image under IMAGES/ (recursively). Writes, with ``fmt="labelimg"``: ``<image stem>.xml`` beside each image in
which the model found something, in LabelImg's Pascal VOC XML (0-based pixel edges, curate/boxes.py), which
LabelImg opens and ``curate import`` reads back. An existing XML is never replaced without ``overwrite``;
no XML is written where nothing was found, because an empty XML would import as a reviewed negative.
Images that share a stem in one folder (``a.jpg`` and ``a.png``) would share ``a.xml``, and neither LabelImg
nor ``curate import`` can tell whose boxes it holds: they are skipped and listed (``stem_collisions``).
With ``fmt="field"``: the detections (with ``confidence``) in a field of an existing dataset, on the samples
whose filepath is one of the images; a sample whose field is already set is kept without ``overwrite``.

With an ``.onnx`` model the post-processing is in the graph: ``score_threshold`` must be at least the
exported one (applied again on the output), and ``nms_iou`` / ``top_k``, when given, must equal the exported
ones (``None``: the model's own; for a run folder 0.45 and 200).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import math
from collections import defaultdict

import numpy as np

from curate.errors import CurateError
from curate.export_runtime import Detections, NetworkInput, open_detector, to_image_pixels

FORMATS = ("labelimg", "field")
MIN_BOX_SIDE_PX = 1  # a box thinner than one pixel after rounding is not worth a person's look
DEFAULT_NMS_IOU = 0.45  # a run folder's, when --nms-iou is not given (an .onnx file has its own)
DEFAULT_TOP_K = 200


@dataclass
class PredictSummary:
    images: int = 0
    target: str = ""
    written: list[str] = field(default_factory=list)  # XML files, or sample filepaths
    boxes: int = 0
    nothing_found: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # field format: images that are not in the dataset
    stem_collisions: list[str] = field(default_factory=list)  # labelimg: images sharing <stem>.xml, skipped


@dataclass(frozen=True)
class ImageBoxes:
    """One image's detections in its own pixel edges, clipped to the image."""

    path: Path
    size: tuple[int, int]  # (width, height)
    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]


def find_images(folder: Path) -> list[Path]:
    from curate.formats.files import is_image_name, walk_files

    if not Path(folder).is_dir():
        raise CurateError(f"{folder}: not a folder; fix: pass the folder that holds the images")
    return [p for p in walk_files(Path(folder)) if is_image_name(p.name) and not p.name.startswith("._")]


def predict_folder(model: Path, images_dir: Path, *, fmt: str = "labelimg", dataset: str | None = None,
                   field_name: str = "predictions", score_threshold: float = 0.5, nms_iou: float | None = None,
                   top_k: int | None = None, overwrite: bool = False, progress: bool | None = None) -> PredictSummary:
    if fmt not in FORMATS:
        raise CurateError(f"--format {fmt!r}: unknown; fix: pass one of {', '.join(FORMATS)}")
    images = find_images(images_dir)
    detector = open_detector(Path(model), score_threshold=score_threshold,
                             nms_iou=DEFAULT_NMS_IOU if nms_iou is None else nms_iou,
                             top_k=DEFAULT_TOP_K if top_k is None else top_k)
    _check_postprocess(detector, model, score_threshold, nms_iou, top_k)
    if fmt == "labelimg":
        return _write_labelimg(detector, images, score_threshold, overwrite, progress)
    if not dataset:
        raise CurateError("--format field needs --dataset NAME; fix: pass the dataset the images were imported into")
    return _write_field(detector, images, dataset, field_name, score_threshold, overwrite, progress)


def _check_postprocess(detector, model: Path, score_threshold: float, nms_iou: float | None,
                       top_k: int | None) -> None:
    """An exported model's thresholds are in its graph: refuse what it cannot honour rather than ignore it."""
    exported = getattr(detector, "score_threshold", score_threshold)
    if score_threshold < exported:
        raise CurateError(f"{model}: exported with score threshold {exported:g}, below which it drops boxes, "
                          f"so --score-threshold {score_threshold:g} cannot be honoured; fix: pass "
                          f"--score-threshold >= {exported:g}, or re-export with a lower --score-threshold")
    for option, given, exported in (("--nms-iou", nms_iou, getattr(detector, "nms_iou", nms_iou)),
                                    ("--top-k", top_k, getattr(detector, "top_k", top_k))):
        if given is not None and not math.isclose(given, exported, rel_tol=0.0, abs_tol=1e-9):
            raise CurateError(f"{model}: exported with {option} {exported:g}, which is in its graph, so {option} "
                              f"{given:g} cannot be honoured; fix: leave {option} out to use {exported:g}, or "
                              f"re-export with `curate export RUN --onnx {option} {given:g}`")


def detect_image(detector, network_input: NetworkInput, path: Path, score_threshold: float) -> ImageBoxes:
    pixels, size = network_input(path)
    found: Detections = detector.detect(pixels).above(score_threshold)
    width, height = size
    boxes = to_image_pixels(found.boxes, size, detector.spec).clip(0, [width, height, width, height])
    rounded = np.round(boxes)  # what the XML will hold
    keep = ((rounded[:, 2] - rounded[:, 0]) >= MIN_BOX_SIDE_PX) & ((rounded[:, 3] - rounded[:, 1]) >= MIN_BOX_SIDE_PX)
    return ImageBoxes(path, size, boxes[keep], found.scores[keep],
                      [detector.classes[int(k)] for k in found.labels[keep]])


def _write_labelimg(detector, images: list[Path], score_threshold: float, overwrite: bool,
                    progress: bool | None) -> PredictSummary:
    from curate.boxes import PixelConvention
    from curate.formats.records import BoxRecord
    from curate.formats.voc_write import write_voc_xml
    from curate.progress import track

    summary = PredictSummary(images=len(images), target="LabelImg XML beside each image")
    summary.stem_collisions = stem_collisions(images)
    collided = set(summary.stem_collisions)
    images = [image for image in images if str(image) not in collided]
    network_input = NetworkInput(detector.spec)
    for image in track(images, total=len(images), description="predict", enabled=progress):
        xml = image.with_suffix(".xml")
        if xml.exists() and not overwrite:
            summary.skipped_existing.append(str(xml))
            continue
        found = detect_image(detector, network_input, image, score_threshold)
        if not found.labels:
            summary.nothing_found.append(str(image))
            continue
        boxes = [BoxRecord(label, tuple(box.tolist())) for label, box in zip(found.labels, found.boxes)]
        write_voc_xml(xml, image.name, found.size[0], found.size[1], 3, boxes, PixelConvention.EDGES_ZERO_BASED,
                      folder=image.parent.name)
        summary.written.append(str(xml))
        summary.boxes += len(boxes)
    return summary


def stem_collisions(images: list[Path]) -> list[str]:
    """Images that share ``<stem>.xml`` with another image of their folder (``a.jpg`` and ``a.png``): one XML
    cannot hold both images' boxes, and LabelImg and ``curate import`` pair an XML with an image by stem."""
    by_xml: dict[Path, list[Path]] = defaultdict(list)
    for image in images:
        by_xml[image.with_suffix(".xml")].append(image)
    return [str(image) for group in by_xml.values() if len(group) > 1 for image in group]


def _write_field(detector, images: list[Path], dataset_name: str, field_name: str, score_threshold: float,
                 overwrite: bool, progress: bool | None) -> PredictSummary:
    import fiftyone as fo

    from curate import schema
    from curate.boxes import edges_to_relative_xywh
    from curate.progress import track

    if field_name == schema.GROUND_TRUTH:
        raise CurateError(f"--field {field_name}: that is the annotations' field; fix: write predictions to "
                          "another field (default: predictions) and review them in the App")
    if not fo.dataset_exists(dataset_name):
        raise CurateError(f"--dataset {dataset_name}: no such dataset; fix: `curate import "
                          f"IMAGES/ --name {dataset_name}` first")
    dataset = fo.load_dataset(dataset_name)
    current = _current_values(dataset, field_name)
    summary = PredictSummary(images=len(images), target=f"dataset {dataset_name!r}, field {field_name!r}")
    values, network_input = {}, NetworkInput(detector.spec)
    for image in track(images, total=len(images), description="predict", enabled=progress):
        stored_path, value = current.get(str(image.resolve()), (None, None))
        if stored_path is None:
            summary.unmatched.append(str(image))
            continue
        if value is not None and not overwrite:
            summary.skipped_existing.append(stored_path)
            continue
        found = detect_image(detector, network_input, image, score_threshold)
        values[stored_path] = fo.Detections(detections=[
            fo.Detection(label=label, bounding_box=edges_to_relative_xywh(box, *found.size), confidence=float(score))
            for label, box, score in zip(found.labels, found.boxes.tolist(), found.scores)])
        summary.written.append(stored_path)
        summary.boxes += len(found.labels)
    if values:
        dataset.set_values(field_name, values, key_field="filepath")
    return summary


def _current_values(dataset, field_name: str) -> dict:
    """Resolved image path -> (filepath as stored, the field's current value)."""
    paths = dataset.values("filepath")
    has_field = dataset.has_sample_field(field_name)
    existing = dataset.values(field_name) if has_field else [None] * len(paths)
    return {str(Path(p).resolve()): (p, value) for p, value in zip(paths, existing)}

