"""LabelImg folders: Pascal-VOC-style XML beside the images, or images and XML in separate folders.

Coordinates are LabelImg's 0-based canvas edges (curate/boxes.py). Each XML's image is looked up, in
order: ``<filename>`` in the XML's own folder; an image with the XML's stem in that folder; then a
unique image with that file name (or stem) anywhere under the imported folder or the extra image
folders given with ``--images``, preferring the one nearest to the XML. Images that no XML claims are
imported as unlabeled samples. ``<path>`` is ignored: it names the annotator's machine, not this one.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

from curate import schema
from curate.boxes import PixelConvention
from curate.errors import AnnotationError, ImageNotFoundError
from curate.formats.files import basename_of, is_image_name, walk_files
from curate.formats.records import ReadContext, SampleRecord, SkippedFile
from curate.formats.voc_xml import read_voc_xml

NAME = "labelimg"
CONVENTION = PixelConvention.EDGES_ZERO_BASED
_SNIFF_FILES = 5  # XML files read to recognise the format
_SNIFF_BYTES = 4096


def _inventory(root: Path, image_dirs: Sequence[Path] = ()) -> tuple[list[Path], list[Path]]:
    xmls, images = [], []
    for path in walk_files(root):
        if path.suffix.lower() == ".xml":
            xmls.append(path)
        elif is_image_name(path.name):
            images.append(path)
    for folder in image_dirs:
        images.extend(p for p in walk_files(folder) if is_image_name(p.name))
    return xmls, sorted(set(images))


def _looks_like_voc_annotation(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        return b"<annotation" in head
    except OSError:
        return False


def detect(path: Path) -> str | None:
    sniffed = 0
    for candidate in walk_files(path):
        if candidate.suffix.lower() != ".xml" or candidate.name.startswith("._"):
            continue
        if _looks_like_voc_annotation(candidate):
            return f"found VOC-style <annotation> XML files without a VOC layout ({candidate.name})"
        sniffed += 1
        if sniffed >= _SNIFF_FILES:
            break
    return None


def count(path: Path, ctx: ReadContext) -> int:
    xmls, images = _inventory(path, ctx.image_dirs)
    return max(len(images), len(xmls))


class _ImageIndex:
    """Images under the root, by folder+stem and by file name, for resolving an XML's image."""

    def __init__(self, images: list[Path]):
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        for image in images:
            self.by_name[image.name].append(image)
            self.by_stem[image.stem].append(image)

    def resolve(self, xml_path: Path, filename: str | None) -> Path | None:
        folder = xml_path.parent
        name = basename_of(filename) if filename else None
        if name and (folder / name).is_file():
            return folder / name
        beside = [p for p in self.by_stem.get(xml_path.stem, ()) if p.parent == folder]
        if beside:
            return beside[0]
        for candidates in (self.by_name.get(name, []) if name else [], self.by_stem.get(xml_path.stem, [])):
            if candidates:
                return min(candidates, key=lambda p: (_distance(p.parent, folder), str(p)))
        return None


def _distance(a: Path, b: Path) -> int:
    common = len(os.path.commonpath([a, b]).split(os.sep))
    return len(a.parts) + len(b.parts) - 2 * common


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    """Records for every XML under ``path`` and every image under ``path`` and ``ctx.image_dirs``."""
    xmls, images = _inventory(path, ctx.image_dirs)
    source = ctx.source
    index = _ImageIndex(images)
    claimed: set[Path] = set()
    for xml_path in xmls:
        record = _record_for_xml(xml_path, index, source)
        yield record
        if isinstance(record, SkippedFile):
            continue
        claimed.add(Path(record.filepath))
    for image in images:
        if image.resolve() not in claimed:
            yield SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                               tags=[schema.TAG_UNLABELED])


def _record_for_xml(xml_path: Path, index: _ImageIndex, source: str) -> SampleRecord | SkippedFile:
    try:
        ann = read_voc_xml(xml_path, CONVENTION)
    except AnnotationError as exc:
        image = index.resolve(xml_path, None)
        if image is None:
            return SkippedFile(str(xml_path), exc)
        return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                            annotation_path=str(xml_path.resolve()), errors=[exc])
    image = index.resolve(xml_path, ann.filename)
    errors = list(ann.errors)
    if image is None:
        image = xml_path.parent / (basename_of(ann.filename) if ann.filename else f"{xml_path.stem}.jpg")
        errors.append(ImageNotFoundError(str(xml_path), "filename",
                                         f"image {ann.filename!r} not found beside the XML or "
                                         f"anywhere under the imported folder",
                                         "copy the image next to the XML or fix <filename>"))
    return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                        annotation_path=str(xml_path.resolve()), annotation_digest=ann.digest,
                        boxes=ann.boxes, declared_size=ann.declared_size, errors=errors)
