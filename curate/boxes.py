"""Every box-format conversion and the pixel convention, in one place.

The rule (decided once, tested in tests/test_boxes.py with known boxes):

* Internally a box is **continuous pixel-edge coordinates**, absolute ``xyxy``: the image spans
  ``[0, W] x [0, H]``; pixel ``i`` (0-based) covers ``[i, i + 1)``. The trainer uses this form.
* **Pascal VOC** files hold 1-based, inclusive pixel *indices*: ``xmin=1, xmax=W`` is the full width.
  The devkit's box covers pixels ``xmin..xmax``, so its edges are ``[xmin - 1, xmax]``.
* **LabelImg** files hold the corners the user dragged on the canvas, which are already 0-based edges:
  ``[xmin, xmax]`` as written.
* **FiftyOne** stores relative ``[x, y, w, h]`` in ``[0, 1]``: ``x = x0 / W``, ``w = (x1 - x0) / W``.

So a VOC box ``(1, 1, 10, 10)`` and a LabelImg box ``(0, 0, 10, 10)`` are the same 10x10 pixel square,
and both become FiftyOne ``[0, 0, 10/W, 10/H]``.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence

Box = tuple[float, float, float, float]


class PixelConvention(str, Enum):
    """How a source file writes pixel coordinates."""

    VOC_ONE_BASED = "voc-1-based"  # inclusive 1-based pixel indices (Pascal VOC devkit)
    EDGES_ZERO_BASED = "edges-0-based"  # continuous 0-based edges (LabelImg, COCO, most tools)


def source_to_edges(box: Sequence[float], convention: PixelConvention) -> Box:
    """A source file's ``(xmin, ymin, xmax, ymax)`` to continuous edges ``(x0, y0, x1, y1)``."""
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    if convention is PixelConvention.VOC_ONE_BASED:
        return (xmin - 1.0, ymin - 1.0, xmax, ymax)
    return (xmin, ymin, xmax, ymax)


def edges_to_source(box: Sequence[float], convention: PixelConvention) -> Box:
    """Inverse of :func:`source_to_edges` (used when writing VOC / LabelImg XML)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if convention is PixelConvention.VOC_ONE_BASED:
        return (x0 + 1.0, y0 + 1.0, x1, y1)
    return (x0, y0, x1, y1)


def edges_to_relative_xywh(box: Sequence[float], width: float, height: float) -> list[float]:
    """Absolute edges ``xyxy`` to FiftyOne's relative ``[x, y, w, h]``."""
    x0, y0, x1, y1 = box
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


def relative_xywh_to_edges(box: Sequence[float], width: float, height: float) -> Box:
    """FiftyOne's relative ``[x, y, w, h]`` to absolute edges ``xyxy``."""
    x, y, w, h = box
    return (x * width, y * height, (x + w) * width, (y + h) * height)


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """Absolute ``[x, y, w, h]`` (COCO, FlickrLogos-32) to absolute ``xyxy``."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def box_area(box: Sequence[float]) -> float:
    """Area of an ``xyxy`` box; negative extents count as zero."""
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def network_to_image_edges(rel_xyxy, size: tuple[int, int], image_size: tuple[int, int], resize_mode: str):
    """Boxes relative to the network input ``[N, 4]`` (numpy) -> pixel edges of the original
    ``(width, height)`` image, undoing the resize: ``stretch``, or ``letterbox`` (scale, centred padding)
    into ``image_size`` = (height, width)."""
    import numpy as np

    width, height = size
    if resize_mode == "stretch":
        return rel_xyxy * np.array([width, height, width, height], dtype=np.float64)
    in_h, in_w = image_size
    scale = min(in_h / height, in_w / width)
    pad = np.array([(in_w - width * scale) / 2, (in_h - height * scale) / 2] * 2)
    return (rel_xyxy * np.array([in_w, in_h, in_w, in_h], dtype=np.float64) - pad) / scale
