"""COCO detection JSON: ``images``, ``annotations`` (``bbox`` = absolute ``[x, y, w, h]``), ``categories``.

The JSON is parsed by FiftyOne's own COCO loader (``fiftyone.utils.coco.load_coco_detection_annotations``);
each annotation is then checked here so a bad one becomes a typed error on its image, not a crash.
Images are looked up by ``file_name`` relative to ``data/``, ``images/`` or the JSON's folder, or in the
folders given with ``--images``. An image listed with no annotations is an explicit negative (``[]``).
``iscrowd`` and extra annotation attributes are kept on the box. COCO boxes are 0-based edges.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Iterator

from curate.boxes import PixelConvention, xywh_to_xyxy
from curate.errors import ImageNotFoundError, InvalidValueError, MalformedXMLError
from curate.formats.files import basename_of
from curate.formats.records import BoxRecord, ReadContext, SampleRecord, SkippedFile

NAME = "coco"
CONVENTION = PixelConvention.EDGES_ZERO_BASED
_SNIFF_BYTES = 1 << 16
_IMAGE_FOLDERS = ("data", "images", ".")


def _json_files(path: Path) -> list[Path]:
    candidates = [*sorted(path.glob("*.json")), *sorted((path / "annotations").glob("*.json"))]
    return [p for p in candidates if _looks_like_coco(p)]


def _looks_like_coco(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    return all(key in head for key in (b'"images"', b'"annotations"')) or (
        b'"images"' in head and b'"categories"' in head)


def detect(path: Path) -> str | None:
    found = _json_files(path)
    return f"found COCO JSON ({found[0].name})" if found else None


def count(path: Path, ctx: ReadContext) -> int:
    return 0  # unknown until the JSON is parsed; the bar shows a running count


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    for json_path in _json_files(path):
        yield from _read_json(json_path, ctx)


def _read_json(json_path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    from fiftyone.utils.coco import load_coco_detection_annotations

    try:
        _, classes, _, images, annotations = load_coco_detection_annotations(str(json_path))
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        yield SkippedFile(str(json_path), MalformedXMLError(
            str(json_path), "", f"not a readable COCO JSON ({type(exc).__name__}: {exc})",
            "re-export the annotations as COCO detection JSON"))
        return
    ctx.stats["annotations"] += sum(len(v) for v in (annotations or {}).values())
    folders = [json_path.parent / f for f in _IMAGE_FOLDERS] + [path_ for path_ in ctx.image_dirs]
    for image_id, image in images.items():
        objects = (annotations or {}).get(image_id, [])
        yield _record(json_path, image, objects, classes, folders, ctx)


def _find_image(file_name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / file_name, folder / basename_of(file_name)):
            if candidate.is_file():
                return candidate
    return None


def _record(json_path, image: dict, objects, classes, folders, ctx) -> SampleRecord:
    file_name = str(image.get("file_name", ""))
    found = _find_image(file_name, folders)
    errors = []
    if found is None:
        found = json_path.parent / basename_of(file_name)
        errors.append(ImageNotFoundError(str(json_path), f"images[id={image.get('id')}].file_name",
                                         f"image {file_name!r} not found in "
                                         f"{', '.join(str(f) for f in folders)}",
                                         "pass the image folder with --images"))
    boxes = []
    for obj in objects:
        try:
            boxes.append(_box(obj, classes, json_path))
        except InvalidValueError as exc:
            errors.append(exc)
    digest = hashlib.sha1(json.dumps([image, [vars(o) for o in objects]], sort_keys=True,
                                     default=str).encode()).hexdigest()
    return SampleRecord(filepath=str(found.resolve()), source=ctx.source, source_format=NAME,
                        annotation_path=str(json_path.resolve()), annotation_digest=digest, boxes=boxes,
                        declared_size=(image.get("width"), image.get("height"), None), errors=errors)


def _box(obj, classes: dict, json_path: Path) -> BoxRecord:
    where = f"annotations[id={obj.id}]"
    bbox = obj.bbox
    if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
        raise InvalidValueError(str(json_path), f"{where}.bbox", f"{bbox!r} is not four finite numbers",
                                "write bbox as [x, y, width, height] in pixels")
    if obj.category_id not in classes:
        raise InvalidValueError(str(json_path), f"{where}.category_id",
                                f"category {obj.category_id!r} is not in categories",
                                "add the category or fix category_id")
    attributes = {"iscrowd": bool(obj.iscrowd)} if obj.iscrowd is not None else {}
    attributes.update({k: v for k, v in (obj.attributes or {}).items()
                       if isinstance(v, (bool, int, float, str))})
    return BoxRecord(classes[obj.category_id], xywh_to_xyxy(bbox), attributes)
