"""Writing Pascal VOC / LabelImg XML (synthetic data, pre-annotation). Inverse of voc_xml.py."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lxml import etree

from curate.boxes import PixelConvention, edges_to_source
from curate.formats.records import BoxRecord


def voc_xml_bytes(filename: str, width: int, height: int, depth: int, boxes: Sequence[BoxRecord],
                  convention: PixelConvention, folder: str = "") -> bytes:
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = folder
    etree.SubElement(root, "filename").text = filename
    size = etree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        etree.SubElement(size, tag).text = str(value)
    etree.SubElement(root, "segmented").text = "0"
    for box in boxes:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = box.label
        etree.SubElement(obj, "pose").text = str(box.attributes.get("pose", "Unspecified"))
        for flag in ("truncated", "difficult"):
            etree.SubElement(obj, flag).text = "1" if box.attributes.get(flag) else "0"
        bndbox = etree.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), edges_to_source(box.box, convention)):
            etree.SubElement(bndbox, tag).text = str(int(round(value)))
    return etree.tostring(root, pretty_print=True)


def write_voc_xml(path: Path, filename: str, width: int, height: int, depth: int,
                  boxes: Sequence[BoxRecord], convention: PixelConvention, folder: str = "") -> None:
    path.write_bytes(voc_xml_bytes(filename, width, height, depth, boxes, convention, folder))
