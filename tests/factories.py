"""Tiny hand-made inputs for tests: images of a chosen size and annotation XML with chosen boxes."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from curate.boxes import PixelConvention
from curate.formats.records import BoxRecord
from curate.formats.voc_write import voc_xml_bytes


def make_image(path: Path, width: int, height: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 80, 40)).save(path, format=fmt)
    return path


def box(label: str, x0: float, y0: float, x1: float, y1: float, **attributes) -> BoxRecord:
    """A box as LabelImg writes it (0-based edges)."""
    return BoxRecord(label, (x0, y0, x1, y1), attributes)


def make_labelimg_xml(path: Path, filename: str, size: tuple[int, int], boxes: list[BoxRecord],
                      convention: PixelConvention = PixelConvention.EDGES_ZERO_BASED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(voc_xml_bytes(filename, size[0], size[1], 3, boxes, convention))
    return path
