"""``curate export RUN --onnx``: the run's SSD as one ONNX file with its post-processing, checked against torch.

Reads: ``RUN/best.pt`` (else ``last.pt``); check images from ``--check-images`` or ``RUN/manifest.jsonl``.
Writes: ``OUT.onnx`` (default ``RUN/model.onnx``: uint8 NHWC RGB image in; boxes, scores, labels out;
trainer/export_graph.py), its sidecar ``OUT.json`` (classes, input and preprocessing, thresholds, the check,
timing and sizes), and with ``--quantize int8`` ``OUT.int8-dynamic.onnx`` / ``OUT.int8-static.onnx`` with
their sidecars. The export fails (:class:`ExportCheckFailed`) when ONNX Runtime and torch disagree.

The model is written as ``OUT.unchecked.onnx`` and renamed to ``OUT.onnx`` (with its sidecar, which then
records the passed check) only once the check passes, so an earlier good ``OUT.onnx`` is never replaced by an
unchecked or failing one. A failed check keeps the file as ``OUT.failed.onnx`` (sidecar ``"ok": false``) for a
bug report; an export that stops early for another reason removes its unchecked file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.errors import CurateError
from curate.export_check import (CheckImage, compare, detect_all, has_ground_truth, images_from_folder,
                                 images_from_manifest, median_ms, prepare_inputs, voc_map)
from curate.export_runtime import (SIDECAR_FORMAT, SIDECAR_VERSION, InputSpec, NetworkInput, OnnxDetector,
                                   TorchDetector, sidecar_path)

log = logging.getLogger(__name__)
QUANTIZE_CHOICES = ("int8",)


@dataclass(frozen=True)
class ExportSettings:
    score_threshold: float = 0.3  # a deployed detector shows boxes; 0.01 (evaluate's) would flood the app
    nms_iou: float = 0.45
    top_k: int = 200
    quantize: str | None = None  # "int8": dynamic and static int8 models as well
    check_images: Path | None = None  # default: the run manifest's validation split
    check_limit: int = 50
    timing_runs: int = 50
    warmup: int = 5
    threads: int = 1  # batch-1 latency on one core, the deployment case; steady on a shared machine
    calibration_images: int = 20


class ExportCheckFailed(CurateError):
    """ONNX Runtime's detections differ from torch's: the exported file must not be deployed."""


def export_run(run_dir: Path, out: Path | None = None, settings: ExportSettings = ExportSettings()) -> dict:
    """Export, check, time, and (optionally) quantize; returns the report written in the sidecar."""
    import torch

    from trainer.export_graph import export_onnx

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "model.onnx"
    _validate(settings, out)
    torch_model = TorchDetector(run_dir, score_threshold=settings.score_threshold, nms_iou=settings.nms_iou,
                                top_k=settings.top_k)
    images = _check_images(run_dir, settings)
    inputs = prepare_inputs(images, NetworkInput(torch_model.spec))
    description = describe(torch_model.classes, torch_model.spec, settings, run_dir)
    unchecked = unchecked_path(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        try:
            export_onnx(torch_model.model, unchecked, score_threshold=settings.score_threshold,
                        nms_iou=settings.nms_iou, top_k=settings.top_k)
            _write_sidecar(unchecked, description)
            onnx_model = OnnxDetector(unchecked, threads=settings.threads, require_check=False)
            report, float_found = _check(torch_model, onnx_model, images, inputs, settings, out)
        except ExportCheckFailed:
            raise
        except BaseException:
            _remove(unchecked)
            raise
        _install(unchecked, out, {**description, "export_report": report})
        models = {"torch_eager": torch_model.detect, "onnx_runtime": onnx_model.detect}
        if settings.quantize:
            calibration = _calibration_inputs(run_dir, settings, torch_model.spec, inputs)
            report["quantized"], quantized = _quantize_all(out, float_found, description, images, inputs,
                                                           calibration, settings)
            models.update({f"int8_{mode}": model.detect for mode, model in quantized.items()})
        _add_timing(report, median_ms(models, inputs, warmup=settings.warmup, runs=settings.timing_runs), settings)
        _write_sidecar(out, {**description, "export_report": report})
    finally:
        torch.set_num_threads(threads)
    return report


def unchecked_path(out: Path) -> Path:
    """Where the model lies while it is checked; never a name that looks deployable."""
    return out.with_name(f"{out.stem}.unchecked.onnx")


def failed_path(out: Path) -> Path:
    """Where a model that failed its check is kept, for a bug report."""
    return out.with_name(f"{out.stem}.failed.onnx")


def _remove(onnx_path: Path) -> None:
    for path in (onnx_path, sidecar_path(onnx_path)):
        path.unlink(missing_ok=True)


def _move(source: Path, target: Path) -> None:
    """The ONNX file and its sidecar. The target's old model goes first, so its name never pairs a new
    sidecar with an old model (or the reverse)."""
    target.unlink(missing_ok=True)
    os.replace(sidecar_path(source), sidecar_path(target))
    os.replace(source, target)


def _install(unchecked: Path, out: Path, sidecar: dict) -> None:
    """The checked model into its place, its sidecar recording the passed check; a stale failed one goes."""
    _write_sidecar(unchecked, sidecar)
    _move(unchecked, out)
    _remove(failed_path(out))


def _validate(settings: ExportSettings, out: Path) -> None:
    checks = ((0.0 <= settings.score_threshold < 1.0, "--score-threshold", "a value in [0, 1)"),
              (0.0 < settings.nms_iou <= 1.0, "--nms-iou", "a value in (0, 1]"),
              (settings.top_k >= 1, "--top-k", "a whole number >= 1"),
              (settings.quantize in (None, *QUANTIZE_CHOICES), "--quantize", "int8"),
              (out.suffix.lower() == ".onnx", "--out", "a file name ending in .onnx"))
    for ok, option, fix in checks:
        if not ok:
            raise CurateError(f"{option}: invalid value; fix: pass {fix}")


def describe(classes: list[str], spec: InputSpec, settings: ExportSettings, run_dir: Path) -> dict:
    """What a deployment needs to feed the model and read its outputs (docs/export.md)."""
    from trainer.augment import IMAGENET_MEAN_RGB
    from trainer.data import NORMALISE_MEAN, NORMALISE_STD
    from trainer.export_graph import INPUT_NAME
    from trainer.model import PRE_NMS_CANDIDATES_PER_CLASS

    height, width = spec.image_size
    return {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "run": str(run_dir), "classes": list(classes),
        "input": {"name": INPUT_NAME, "shape": [1, height, width, 3], "dtype": "uint8", "layout": "NHWC",
                  "color": "RGB", "resize_mode": spec.resize_mode, "interpolation": "bilinear",
                  "letterbox_fill_rgb": list(IMAGENET_MEAN_RGB) if spec.resize_mode == "letterbox" else None},
        "normalisation": {"in_graph": True, "formula": "(pixel / 255 - mean) / std",
                          "mean": list(NORMALISE_MEAN), "std": list(NORMALISE_STD)},
        "outputs": {"boxes": "[K, 4] float32 relative xyxy of the network input, in [0, 1]",
                    "scores": "[K] float32, decreasing", "labels": "[K] int64 index into classes"},
        "postprocess": {"score_threshold": settings.score_threshold, "nms_iou": settings.nms_iou,
                        "top_k": settings.top_k, "candidates_per_class": PRE_NMS_CANDIDATES_PER_CLASS,
                        "nms": "per class (ONNX NonMaxSuppression, classes as its batch axis)"},
    }


def _write_sidecar(onnx_path: Path, content: dict) -> None:
    sidecar_path(onnx_path).write_text(json.dumps(content, indent=2) + "\n")


def _check_images(run_dir: Path, settings: ExportSettings) -> list[CheckImage]:
    if settings.check_images:
        return images_from_folder(settings.check_images, settings.check_limit)
    return images_from_manifest(run_dir, settings.check_limit)


def _check(torch_model: TorchDetector, onnx_model: OnnxDetector, images, inputs,
           settings: ExportSettings, out: Path) -> tuple[dict, list]:
    """Report of a passed check; a failed one moves ``onnx_model``'s file to ``failed_path(out)`` (unless it
    is ``out`` itself) with ``"ok": false`` in its sidecar and raises :class:`ExportCheckFailed`."""
    torch_found, onnx_found = detect_all(torch_model.detect, inputs), detect_all(onnx_model.detect, inputs)
    agreement = compare(torch_found, onnx_found, [str(i.path) for i in images],
                        score_threshold=settings.score_threshold, nms_iou=settings.nms_iou, top_k=settings.top_k)
    notes = [image.note for image in images if image.note]
    for note in notes:
        log.warning("check image without ground truth: %s", note)
    if not agreement.ok:
        _write_sidecar(onnx_model.path, {**onnx_model.sidecar, "export_report": {"check": agreement.to_dict()}})
        if onnx_model.path == out:  # an installed model checked again: its sidecar now says it failed
            kept, previous = out, f"{out} is marked as failed"
        else:
            kept = failed_path(out)
            _move(onnx_model.path, kept)
            previous = f"{out} is left as it was" if out.exists() else f"nothing written at {out}"
        raise ExportCheckFailed(
            f"{out}: ONNX Runtime and torch disagree on {len(agreement.failures)} detection(s) over "
            f"{agreement.images} images (first: {agreement.failures[0]}); {previous}; the model is kept as "
            f"{kept} (sidecar {sidecar_path(kept).name}: \"ok\": false), which must not be deployed; fix: report "
            f"it as a bug with {sidecar_path(kept).name}, or export with the torch and onnxruntime versions of "
            "pyproject.toml")
    return {"onnx": str(out), "check": agreement.to_dict(), "check_images": len(images),
            "ground_truth_notes": notes,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
            "size_bytes": {"onnx": onnx_model.path.stat().st_size, "checkpoint": torch_model.checkpoint.stat().st_size},
            "voc_map50": {"torch": voc_map(images, inputs, torch_found, torch_model.classes, torch_model.spec),
                          "onnx": voc_map(images, inputs, onnx_found, torch_model.classes, torch_model.spec),
                          "at_score_threshold": settings.score_threshold,
                          "images": sum(i.gt_boxes is not None for i in images)} if has_ground_truth(images)
            else None}, onnx_found


def _add_timing(report: dict, ms: dict[str, float], settings: ExportSettings) -> None:
    report["ms_per_image"] = {"torch_eager": ms["torch_eager"], "onnx_runtime": ms["onnx_runtime"],
                              "threads": settings.threads, "batch": 1, "runs": settings.timing_runs,
                              "includes": "normalise + network + decode/top-k/NMS (not resize)"}
    report["speedup_vs_torch"] = ms["torch_eager"] / ms["onnx_runtime"]
    for mode, quantized in (report.get("quantized") or {}).items():
        quantized["ms_per_image"] = ms[f"int8_{mode}"]
        quantized["speedup_vs_torch"] = ms["torch_eager"] / ms[f"int8_{mode}"]


def _quantize_all(float_path: Path, float_found: list, description: dict, images, inputs, calibration: list,
                  settings: ExportSettings) -> tuple[dict, dict]:
    from curate.export_quant import QUANT_MODES, agreement, quantize

    results, models = {}, {}
    for mode in QUANT_MODES:
        path = quantize(float_path, mode, input_name=description["input"]["name"], calibration=calibration)
        _write_sidecar(path, {**description, "quantization": {"mode": mode, "from": float_path.name}})
        model = models[mode] = OnnxDetector(path, threads=settings.threads)
        found = detect_all(model.detect, inputs)
        results[mode] = {
            "onnx": str(path), "size_bytes": path.stat().st_size,
            "agreement_with_float": agreement(float_found, found),
            "voc_map50": voc_map(images, inputs, found, model.classes, model.spec),
            "calibration_images": len(calibration) if mode == "static" else 0}
    return results, models


def _calibration_inputs(run_dir: Path, settings: ExportSettings, spec: InputSpec, check_inputs) -> list:
    """Training images when the run's manifest has them (not the ones the check measures), else the check's."""
    try:
        train = images_from_manifest(run_dir, settings.calibration_images, splits=("train",))
    except CurateError:
        return [pixels for pixels, _ in check_inputs[:settings.calibration_images]]
    return [pixels for pixels, _ in prepare_inputs(train, NetworkInput(spec))]
