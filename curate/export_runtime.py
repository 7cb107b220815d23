"""One way to run a detector on image files, whether it is a run's torch model or an exported ONNX file.

Both take the same network input: the image as uint8 RGB, resized to the model's input size by the
trainer's evaluation pipeline (``stretch`` or ``letterbox``, bilinear). Both return :class:`Detections`
relative to that input; :func:`to_image_pixels` maps them back to the original image's pixel edges
(curate/boxes.py). The ONNX model carries its own normalisation and post-processing
(trainer/export_graph.py); the torch side runs ``model.forward`` + ``model.postprocess`` as
``curate evaluate`` does.

:class:`OnnxDetector` (what ``curate predict`` runs) refuses a file whose sidecar does not record a passed
check against torch (:func:`require_passed_check`): a ``*.failed.onnx`` kept for a bug report, or a file
whose export stopped before its check ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.boxes import network_to_image_edges
from curate.errors import CurateError

SIDECAR_FORMAT = "curate-ssd-onnx"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class InputSpec:
    image_size: tuple[int, int]  # (height, width) of the network input
    resize_mode: str  # "stretch" or "letterbox" (trainer/augment.py)


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # [K, 4] relative xyxy of the network input
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] 0-based indices into the class list

    def above(self, score_threshold: float) -> "Detections":
        keep = self.scores > score_threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])


class NetworkInput:
    """Image file -> (uint8 ``H x W x 3`` RGB at the input size, original ``(width, height)``)."""

    def __init__(self, spec: InputSpec):
        from trainer.augment import build_augmentation

        self.spec = spec
        self.pipeline = build_augmentation("none", size=spec.image_size, resize_mode=spec.resize_mode)

    def __call__(self, path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
        from trainer.data import load_rgb

        image = load_rgb(str(path))
        resized = self.pipeline(image=image, bboxes=np.zeros((0, 4)), labels=np.zeros(0))["image"]
        return np.ascontiguousarray(resized), (image.shape[1], image.shape[0])


def to_image_pixels(rel_xyxy: np.ndarray, size: tuple[int, int], spec: InputSpec) -> np.ndarray:
    """Relative boxes of the network input -> absolute edges of the original ``(width, height)`` image."""
    return network_to_image_edges(rel_xyxy, size, spec.image_size, spec.resize_mode)


class TorchDetector:
    """A run folder's model in eval mode (best.pt, else last.pt), with ``SSD.postprocess``."""

    def __init__(self, run_dir: Path, *, score_threshold: float, nms_iou: float, top_k: int):
        from curate.evaluate import load_run

        self.checkpoint = _checkpoint(Path(run_dir))
        self.model, recipe, self.classes = load_run(Path(run_dir))
        self.spec = InputSpec(tuple(recipe.model.image_size), recipe.model.resize_mode)
        self.score_threshold, self.nms_iou, self.top_k = score_threshold, nms_iou, top_k

    def detect(self, image: np.ndarray) -> Detections:
        import torch

        from trainer.data import normalise

        with torch.no_grad():
            cls_logits, loc = self.model(normalise(image[None]))
            found = self.model.postprocess(cls_logits, loc, self.score_threshold, self.nms_iou, self.top_k)[0]
        return Detections(found["boxes"].numpy(), found["scores"].numpy(), found["labels"].numpy() - 1)


class OnnxDetector:
    """An ONNX file written by ``curate export`` and its JSON sidecar, run by ONNX Runtime on the CPU."""

    def __init__(self, onnx_path: Path, *, threads: int | None = None, require_check: bool = True):
        """``require_check=False`` only for ``curate export`` itself, which runs the file to check it."""
        import onnxruntime as ort

        self.path = Path(onnx_path)
        self.sidecar = read_sidecar(self.path)
        if require_check:
            require_passed_check(self.path, self.sidecar)
        self.classes = list(self.sidecar["classes"])
        source = self.sidecar["input"]
        self.spec = InputSpec(tuple(source["shape"][1:3]), source["resize_mode"])
        postprocess = self.sidecar["postprocess"]
        self.score_threshold = float(postprocess["score_threshold"])
        self.nms_iou, self.top_k = float(postprocess["nms_iou"]), int(postprocess["top_k"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, image: np.ndarray) -> Detections:
        boxes, scores, labels = self.session.run(None, {self.input_name: image[None]})
        return Detections(boxes, scores, labels)


def sidecar_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: Path) -> dict:
    path = sidecar_path(onnx_path)
    if not Path(onnx_path).is_file():
        raise CurateError(f"{onnx_path}: no such ONNX file; fix: `curate export RUN --onnx --out {onnx_path}`")
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CurateError(f"{path}: the sidecar of {Path(onnx_path).name} is missing or unreadable ({error}); "
                          "fix: re-export with `curate export RUN --onnx`, which writes both") from None
    if sidecar.get("format") != SIDECAR_FORMAT or sidecar.get("version") != SIDECAR_VERSION:
        raise CurateError(f"{path}: format/version is not {SIDECAR_FORMAT!r} {SIDECAR_VERSION}; fix: re-export "
                          "with `curate export RUN --onnx`")
    return sidecar


def require_passed_check(onnx_path: Path, sidecar: dict) -> None:
    """Refuse an ONNX file whose check against torch failed or never finished. An int8 sidecar (with
    ``quantization``) is written only after its float model's check passed."""
    if "quantization" in sidecar:
        return
    check = (sidecar.get("export_report") or {}).get("check") or {}
    if check.get("ok") is True:
        return
    why = ("its check against torch failed" if check.get("ok") is False
           else "its export stopped before the check against torch passed")
    raise CurateError(f"{onnx_path}: {why} ({sidecar_path(onnx_path).name} has no passed \"check\"), so it "
                      "must not be used; fix: re-export with `curate export RUN --onnx` and use the file it "
                      "writes once the check passes (a failed check keeps its file as *.failed.onnx, for a bug "
                      "report only)")


def _checkpoint(run_dir: Path) -> Path:
    """The file load_run reads: best.pt, else last.pt."""
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CurateError(f"{run_dir}: no best.pt or last.pt; fix: pass a run folder written by `curate train` "
                      "(runs/NAME)")


def open_detector(model: Path, *, score_threshold: float, nms_iou: float, top_k: int):
    """A run folder -> :class:`TorchDetector`; an ``.onnx`` file -> :class:`OnnxDetector`."""
    model = Path(model)
    if model.suffix.lower() == ".onnx":
        return OnnxDetector(model)
    return TorchDetector(model, score_threshold=score_threshold, nms_iou=nms_iou, top_k=top_k)
