"""One Pascal VOC / LabelImg annotation file to plain records.

File-level problems (not XML, unsafe XML, wrong root) raise; problems inside one ``<object>`` are
collected so the other boxes of the image survive, and the sample is tagged (see ingest.py).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from curate.boxes import PixelConvention, source_to_edges
from curate.errors import AnnotationError, InvalidValueError, MalformedXMLError, MissingFieldError
from curate.formats.records import BoxRecord
from curate.formats.xml_safe import parse_xml

BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
BOOL_ATTRIBUTES = ("difficult", "truncated", "occluded")
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no", ""}


@dataclass
class VocAnnotation:
    path: str
    digest: str
    filename: str | None
    folder: str | None
    declared_size: tuple[int | None, int | None, int | None] | None
    boxes: list[BoxRecord] = field(default_factory=list)
    errors: list[AnnotationError] = field(default_factory=list)


def read_voc_xml(path: Path, convention: PixelConvention) -> VocAnnotation:
    """Parse ``path``. Raises AnnotationError for file-level problems."""
    data = path.read_bytes()
    root = parse_xml(data, str(path))
    if root.tag != "annotation":
        raise MalformedXMLError(str(path), "/", f"root element is <{root.tag}>, expected <annotation>",
                                "this is not a Pascal VOC / LabelImg annotation file; move it out of "
                                "the folder")
    errors: list[AnnotationError] = []
    ann = VocAnnotation(
        path=str(path),
        digest=hashlib.sha1(data).hexdigest(),
        filename=_text(root, "filename"),
        folder=_text(root, "folder"),
        declared_size=_declared_size(root, str(path), errors),
        errors=errors,
    )
    for index, obj in enumerate(root.findall("object")):
        try:
            ann.boxes.append(_read_object(obj, index, str(path), convention))
        except AnnotationError as exc:
            errors.append(exc)
    return ann


def _text(element: etree._Element, tag: str) -> str | None:
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _declared_size(root, path: str, errors: list) -> tuple[int | None, int | None, int | None] | None:
    size = root.find("size")
    if size is None:
        return None
    values = []
    for tag in ("width", "height", "depth"):
        raw = _text(size, tag)
        try:
            values.append(None if raw is None else int(float(raw)))
        except ValueError:
            errors.append(InvalidValueError(path, f"size/{tag}", f"{raw!r} is not a number",
                                            "the true size is read from the image; fix or delete the "
                                            "<size> element"))
            values.append(None)
    return tuple(values)  # type: ignore[return-value]


def _read_object(obj, index: int, path: str, convention: PixelConvention) -> BoxRecord:
    where = f"object[{index}]"
    label = _text(obj, "name")
    if label is None:
        raise MissingFieldError(path, f"{where}/name", "the object has no class name",
                                "add <name>CLASS</name> to the object or delete the object")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise MissingFieldError(path, f"{where}/bndbox", f"object {label!r} has no <bndbox>",
                                "redraw the box in LabelImg or delete the object")
    coords = [_coordinate(bndbox, tag, f"{where}/bndbox/{tag}", path) for tag in BOX_FIELDS]
    attributes: dict = {name: _flag(obj, name, f"{where}/{name}", path) for name in BOOL_ATTRIBUTES}
    pose = _text(obj, "pose")
    if pose is not None:
        attributes["pose"] = pose
    return BoxRecord(label=label, box=source_to_edges(coords, convention), attributes=attributes)


def _coordinate(bndbox, tag: str, field_path: str, path: str) -> float:
    raw = _text(bndbox, tag)
    if raw is None:
        raise MissingFieldError(path, field_path, f"<{tag}> is missing or empty",
                                "redraw the box in LabelImg or delete the object")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidValueError(path, field_path, f"{raw!r} is not a number",
                                "write the pixel coordinate as a number") from None
    if not math.isfinite(value):
        raise InvalidValueError(path, field_path, f"{raw!r} is not a finite number",
                                "write the pixel coordinate as a finite number")
    return value


def _flag(obj, tag: str, field_path: str, path: str) -> bool:
    raw = _text(obj, tag)
    if raw is None or raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    raise InvalidValueError(path, field_path, f"{raw!r} is not 0 or 1", f"write <{tag}>0</{tag}> or 1")
