"""YOLO txt labels: one ``class cx cy w h`` line per box, relative to the image (0..1).

Two layouts:

* darknet / YOLOv4 (CVAT's "YOLO 1.1" export): ``obj.names`` (one class per line), labels in
  ``obj_*_data/`` or ``data/``, images beside the labels or in ``--images``;
* ultralytics / YOLOv5+: ``data.yaml`` / ``dataset.yaml`` with ``names`` and ``train``/``val``/``test``
  image folders; labels in the parallel ``labels/`` folders; the yaml keys become split tags.

The lines are parsed here, not by FiftyOne's YOLO importer, because that importer needs the labels beside
the images and stops at the first bad line; here each bad line is a typed error naming file and line.
An image whose label file is empty is an explicit negative; an image with no label file is unlabeled.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Iterator

import yaml

from curate import schema
from curate.boxes import PixelConvention
from curate.errors import InvalidValueError, UnreadableImageError
from curate.formats.files import is_image_name, walk_files
from curate.formats.records import BoxRecord, ReadContext, SampleRecord
from curate.imageinfo import read_header

NAME = "yolo"
CONVENTION = PixelConvention.EDGES_ZERO_BASED  # relative coordinates times the true size
_YAML_NAMES = ("data.yaml", "dataset.yaml")
_SPLIT_KEYS = {"train": "train", "val": "val", "valid": "val", "test": "test"}


def _yaml_file(path: Path) -> Path | None:
    return next((path / n for n in _YAML_NAMES if (path / n).is_file()), None)


def detect(path: Path) -> str | None:
    if (path / "obj.names").is_file():
        return "found obj.names (darknet / YOLOv4 layout)"
    found = _yaml_file(path)
    if found:
        config = _load_yaml(found)
        if isinstance(config, dict) and "names" in config:
            return f"found {found.name} with names (ultralytics layout)"
    return None


def _load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return None


def _classes(path: Path) -> tuple[list[str], dict[str, str]]:
    """Class names, and split name -> image folder (ultralytics only)."""
    if (path / "obj.names").is_file():
        names = [n.strip() for n in (path / "obj.names").read_text().splitlines() if n.strip()]
        return names, {}
    config = _load_yaml(_yaml_file(path)) or {}
    names = config.get("names", [])
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    base = path / str(config.get("path", "."))
    splits = {_SPLIT_KEYS[k]: str(base / str(config[k])) for k in _SPLIT_KEYS if isinstance(config.get(k), str)}
    return [str(n) for n in names], splits


def count(path: Path, ctx: ReadContext) -> int:
    return sum(1 for p in walk_files(path) if p.suffix == ".txt")


def _label_index(path: Path) -> dict[str, Path]:
    return {p.stem: p for p in walk_files(path) if p.suffix == ".txt" and p.parent != path}


def _images(path: Path, ctx: ReadContext, splits: dict[str, str]) -> list[tuple[Path, str | None]]:
    if splits:
        return [(p, split) for split, folder in splits.items() if Path(folder).is_dir()
                for p in walk_files(Path(folder)) if is_image_name(p.name)]
    roots = [path, *ctx.image_dirs]
    return [(p, None) for root in roots for p in walk_files(root) if is_image_name(p.name)]


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord]:
    classes, splits = _classes(path)
    labels = _label_index(path)
    claimed = set()
    for image, split in _images(path, ctx, splits):
        label_file = labels.get(image.stem)
        claimed.add(image.stem)
        yield _record(image, label_file, split, classes, ctx)
    for stem, label_file in labels.items():
        if stem not in claimed:
            ctx.stats["label_files_without_image"] += 1
            ctx.note("label_files_without_image", str(label_file))


def _record(image: Path, label_file: Path | None, split, classes, ctx) -> SampleRecord:
    record = SampleRecord(filepath=str(image.resolve()), source=ctx.source, source_format=NAME,
                          tags=[split] if split else [])
    if label_file is None:
        record.tags.append(schema.TAG_UNLABELED)
        return record
    data = label_file.read_bytes()
    record.annotation_path, record.annotation_digest = str(label_file.resolve()), hashlib.sha1(data).hexdigest()
    try:
        header = read_header(str(image))
    except UnreadableImageError as exc:
        record.errors.append(exc)
        return record
    record.boxes = []
    for number, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                record.boxes.append(_box(line, number, label_file, classes, header.width, header.height))
            except InvalidValueError as exc:
                record.errors.append(exc)
    return record


def _box(line: str, number: int, label_file: Path, classes, width: int, height: int) -> BoxRecord:
    fields = line.split()
    where = f"line {number}"
    if len(fields) != 5:
        raise InvalidValueError(str(label_file), where, f"{len(fields)} fields, expected 5 "
                                "(class cx cy w h)", "write one box per line: class cx cy w h")
    try:
        index, values = int(fields[0]), [float(v) for v in fields[1:]]
    except ValueError:
        raise InvalidValueError(str(label_file), where, f"{line.strip()!r} is not numeric",
                                "write the class index and four numbers") from None
    if not 0 <= index < len(classes):
        raise InvalidValueError(str(label_file), f"{where}: class", f"class {index} is not in the "
                                f"{len(classes)} names", "fix the class index or the names list")
    if not all(math.isfinite(v) for v in values):
        raise InvalidValueError(str(label_file), where, "non-finite coordinate", "write finite numbers")
    cx, cy, w, h = values
    return BoxRecord(classes[index], ((cx - w / 2) * width, (cy - h / 2) * height,
                                      (cx + w / 2) * width, (cy + h / 2) * height), {})
