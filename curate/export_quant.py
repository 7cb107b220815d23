"""int8 versions of an exported SSD (ONNX Runtime quantization) and how far they stray from the float one.

Only the network's convolutions are quantized; normalisation, decoding, softmax, top-k and NMS stay float,
so thresholds mean the same thing in both models.

* ``dynamic``: weights to uint8 ahead of time, activations quantized per call from their observed range
  (``ConvInteger``; ONNX Runtime's CPU kernel takes uint8 weights only). Needs no data.
* ``static``: QDQ format, int8 weights per output channel, activation ranges fixed by MinMax calibration
  on a few images (the run's training images, else the check images).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from curate.export_runtime import Detections

QUANT_MODES = ("dynamic", "static")
QUANTIZED_OPS = ["Conv"]
AGREEMENT_IOU = 0.5  # an int8 detection "agrees" with a float one of the same label at this IoU


def quantized_path(float_path: Path, mode: str) -> Path:
    return float_path.with_name(f"{float_path.stem}.int8-{mode}.onnx")


def quantize(float_path: Path, mode: str, *, input_name: str, calibration: Sequence[np.ndarray] = ()) -> Path:
    """Write the int8 model beside ``float_path`` and return its path."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = quantized_path(float_path, mode)
    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(prepared, out, op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QUInt8)
        else:
            quantize_static(prepared, out, _Calibration(input_name, calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=QUANTIZED_OPS, per_channel=True)
    return out


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over network inputs."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]):
        self.feeds = iter([{input_name: image[None]} for image in images])

    def get_next(self):
        return next(self.feeds, None)


class _quiet_quantizer:
    """The quantizer logs a warning per tensor it leaves alone (the float post-processing): hide them."""

    def __enter__(self):
        self.logger = logging.getLogger()
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def agreement(reference: Sequence[Detections], candidate: Sequence[Detections]) -> dict:
    """How many float detections the int8 model also finds (same label, IoU >= 0.5), images with the same
    detection count, and the mean score change of the matched pairs."""
    from trainer.metrics import box_iou

    found, total, same_count, score_changes = 0, 0, 0, []
    for ref, cand in zip(reference, candidate):
        total += len(ref.scores)
        same_count += len(ref.scores) == len(cand.scores)
        free = np.ones(len(cand.scores), bool)
        iou = (box_iou(ref.boxes[:, None].astype(np.float64), cand.boxes[None].astype(np.float64))
               if len(cand.scores) else None)
        for i in range(len(ref.scores)):
            if iou is None:
                break
            options = np.where(free & (cand.labels == ref.labels[i]) & (iou[i] >= AGREEMENT_IOU))[0]
            if len(options):
                j = options[np.argmax(iou[i, options])]
                free[j], found = False, found + 1
                score_changes.append(abs(float(cand.scores[j] - ref.scores[i])))
    return {"float_detections_found": found, "float_detections": total,
            "found_fraction": found / total if total else 1.0,
            "images_with_same_count": same_count, "images": len(reference),
            "mean_abs_score_change": float(np.mean(score_changes)) if score_changes else 0.0}
