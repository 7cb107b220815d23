"""FlickrLogos-32, as published (``FlickrLogos-v2/``)::

    classes/jpg/<brand>/<image>.jpg
    classes/masks/<brand>/<image>.bboxes.txt    header ``x y width height``, then one ``x y w h`` a line
                                                (the release names them ``<image>.jpg.bboxes.txt``: both work)
    trainset.txt valset.txt testset.txt trainvalset.txt     lines ``brand,filename``

Coordinates: ``x y`` is the top-left corner in 0-based pixels and ``w h`` the extent, so the box's edges
are ``(x, y, x + w, y + h)`` (``boxes.xywh_to_xyxy``, then ``EDGES_ZERO_BASED``): the masks the boxes come
from are 0-based pixel images, and an extent added to a corner lands on the far edge.

Kept: each box is labelled with its brand folder. Images of the ``no-logo`` brand are background samples:
``boxes=[]`` and the ``negative`` tag (their annotation is the folder itself, which ``annotation_path``
names). A logo image without its box file keeps ``image_label=<brand>`` and ``boxes=None`` (it holds a logo,
so it must never become a negative) with a ``MissingFieldError``. Split tags come from the lists:
``train``/``val``/``test``, and ``trainval`` only for images in neither train nor val. Mask PNGs are
not read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

from curate import schema
from curate.boxes import PixelConvention, source_to_edges, xywh_to_xyxy
from curate.errors import AnnotationError, ImageNotFoundError, MissingFieldError
from curate.formats.files import is_image_name
from curate.formats.text_fields import find_folder, parse_fields
from curate.formats.records import BoxRecord, ReadContext, SampleRecord, SkippedFile

NAME = "flickrlogos32"
CONVENTION = PixelConvention.EDGES_ZERO_BASED
NO_LOGO_BRAND = "no-logo"
BOX_FILE_SUFFIX = ".bboxes.txt"
BOX_FIELDS = ("x", "y", "width", "height")
SPLIT_LISTS = {"trainset.txt": "train", "valset.txt": "val", "testset.txt": "test",
               "trainvalset.txt": schema.TAG_TRAINVAL}


def _is_root(folder: Path) -> bool:
    return (folder / "classes" / "jpg").is_dir() and (folder / "classes" / "masks").is_dir()


def detect(path: Path) -> str | None:
    root = find_folder(path, _is_root)
    return None if root is None else f"found FlickrLogos-32 layout at {root} (classes/jpg and classes/masks)"


def count(path: Path, ctx: ReadContext) -> int:
    root = find_folder(path, _is_root)
    if root is None:
        return 0
    return sum(1 for p in (root / "classes" / "jpg").glob("*/*") if is_image_name(p.name))


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    root = find_folder(path, _is_root)
    if root is None:
        raise FileNotFoundError(f"{path}: no classes/jpg and classes/masks folders found")
    splits: dict[tuple[str, str], set[str]] = {}
    for list_name, split in SPLIT_LISTS.items():
        if (root / list_name).is_file():
            yield from _read_split_list(root / list_name, split, splits)
    seen: set[tuple[str, str]] = set()
    for brand_dir in sorted(p for p in (root / "classes" / "jpg").iterdir() if p.is_dir()):
        for image in sorted(p for p in brand_dir.iterdir() if is_image_name(p.name)):
            seen.add((brand_dir.name, image.name))
            record = _record(image, root / "classes" / "masks" / brand_dir.name, ctx.source)
            record.tags.extend(_split_tags(splits.get((brand_dir.name, image.name), set())))
            yield record
    yield from _box_files_without_image(root, seen, ctx.source)
    ctx.stats["split_list_entries_without_image"] += len(set(splits) - seen)


def _read_split_list(list_path: Path, split: str, splits: dict) -> Iterator[SkippedFile]:
    for line_no, line in enumerate(list_path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = parse_fields([t.strip() for t in line.split(",")], ("brand", "filename"), (),
                                  path=str(list_path), line_no=line_no,
                                  fix="write the line as `brand,filename`, or delete it")
        except AnnotationError as exc:
            yield SkippedFile(str(list_path), exc)
            continue
        splits.setdefault((values["brand"], values["filename"]), set()).add(split)


def _split_tags(listed: set[str]) -> list[str]:
    if schema.TAG_TRAINVAL in listed and listed & {"train", "val"}:
        listed = listed - {schema.TAG_TRAINVAL}
    return sorted(listed)


def _box_file(masks_dir: Path, image_name: str) -> Path | None:
    for name in (f"{image_name}{BOX_FILE_SUFFIX}", f"{Path(image_name).stem}{BOX_FILE_SUFFIX}"):
        if (masks_dir / name).is_file():
            return masks_dir / name
    return None


def _record(image: Path, masks_dir: Path, source: str) -> SampleRecord:
    brand = image.parent.name
    record = SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME)
    if brand == NO_LOGO_BRAND:
        record.annotation_path = str(image.parent.resolve())
        record.annotation_digest = hashlib.sha1(f"{brand},{image.name}".encode()).hexdigest()
        record.boxes = []
        record.tags.append(schema.TAG_NEGATIVE)
        return record
    box_file = _box_file(masks_dir, image.name)
    if box_file is None:
        record.image_label = brand
        record.errors.append(MissingFieldError(
            str(masks_dir / f"{image.name}{BOX_FILE_SUFFIX}"), "", f"no box file for this {brand!r} image",
            f"add {image.name}{BOX_FILE_SUFFIX} to {masks_dir}, or move the image out of classes/jpg"))
        return record
    _read_box_file(box_file, brand, record)
    return record


def _read_box_file(box_file: Path, brand: str, record: SampleRecord) -> None:
    data = box_file.read_bytes()
    record.annotation_path = str(box_file.resolve())
    record.annotation_digest = hashlib.sha1(data).hexdigest()
    record.boxes = []
    for line_no, line in enumerate(data.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        tokens = line.split()
        if not tokens or (line_no == 1 and tokens[0].lower() == BOX_FIELDS[0]):  # the header line
            continue
        try:
            values = parse_fields(tokens, BOX_FIELDS, BOX_FIELDS, path=str(box_file), line_no=line_no,
                                  fix="write the box as `x y width height`, or delete the line")
        except AnnotationError as exc:
            record.errors.append(exc)
            continue
        xyxy = xywh_to_xyxy([values[name] for name in BOX_FIELDS])
        record.boxes.append(BoxRecord(brand, source_to_edges(xyxy, CONVENTION)))


def _box_files_without_image(root: Path, seen: set, source: str) -> Iterator[SampleRecord]:
    for box_file in sorted((root / "classes" / "masks").glob(f"*/*{BOX_FILE_SUFFIX}")):
        brand, image_name = box_file.parent.name, box_file.name[:-len(BOX_FILE_SUFFIX)]
        if not is_image_name(image_name):
            image_name = f"{image_name}.jpg"
        if (brand, image_name) in seen:
            continue
        image = root / "classes" / "jpg" / brand / image_name
        record = SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME)
        _read_box_file(box_file, brand, record)
        record.errors.append(ImageNotFoundError(
            str(box_file), "", f"image {image} not found",
            "put the image in classes/jpg/<brand>/ or delete the box file"))
        yield record
