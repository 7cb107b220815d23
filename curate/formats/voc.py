"""Pascal VOC layout: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/{train,val,trainval,test}.txt``.

Coordinates are the devkit's 1-based inclusive pixel indices (curate/boxes.py). The root may be the
VOC folder itself or any parent with a single ``VOCdevkit/VOC20xx``-style folder below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from curate import schema
from curate.boxes import PixelConvention
from curate.errors import AnnotationError, ImageNotFoundError
from curate.formats.files import basename_of, find_image_beside, is_image_name
from curate.formats.records import ReadContext, SampleRecord, SkippedFile
from curate.formats.voc_xml import read_voc_xml

NAME = "voc"
CONVENTION = PixelConvention.VOC_ONE_BASED
SPLIT_FILES = ("train", "val", "trainval", "test")
_SEARCH_DEPTH = 3  # VOCdevkit/VOC2012/Annotations is two levels below a download folder


def find_voc_root(path: Path) -> Path | None:
    """The folder holding ``Annotations/`` and ``JPEGImages/``, at ``path`` or a few levels below."""
    frontier = [path]
    for _ in range(_SEARCH_DEPTH):
        hits = [p for p in frontier if (p / "Annotations").is_dir() and (p / "JPEGImages").is_dir()]
        if len(hits) == 1:
            return hits[0]
        frontier = [c for p in frontier for c in sorted(p.iterdir()) if c.is_dir()] if not hits else []
    return None


def detect(path: Path) -> str | None:
    root = find_voc_root(path)
    if root is None:
        return None
    return f"found Pascal VOC layout at {root} (Annotations/ and JPEGImages/)"


def count(path: Path, ctx: ReadContext) -> int:
    root = find_voc_root(path)
    return 0 if root is None else sum(1 for _ in (root / "JPEGImages").iterdir())


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    """Records for ``path``'s VOC layout; images always come from JPEGImages/ (``image_dirs`` unused)."""
    source = ctx.source
    root = find_voc_root(path)
    if root is None:
        raise FileNotFoundError(f"{path}: no Annotations/ and JPEGImages/ folders found")
    splits = read_split_tags(root)
    images_dir = root / "JPEGImages"
    claimed: set[str] = set()
    for xml_path in sorted((root / "Annotations").glob("*.xml")):
        record = _record_for_xml(xml_path, images_dir, source)
        if isinstance(record, SampleRecord):
            record.tags.extend(splits.get(Path(record.filepath).stem, ()))
            claimed.add(record.filepath)
        yield record
    for image in sorted(images_dir.iterdir()):
        if is_image_name(image.name) and str(image.resolve()) not in claimed:
            yield SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                               tags=[schema.TAG_UNLABELED, *splits.get(image.stem, ())])


def _record_for_xml(xml_path: Path, images_dir: Path, source: str) -> SampleRecord | SkippedFile:
    try:
        ann = read_voc_xml(xml_path, CONVENTION)
    except AnnotationError as exc:
        image = find_image_beside(images_dir, xml_path.stem)
        if image is None:
            return SkippedFile(str(xml_path), exc)
        return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                            annotation_path=str(xml_path.resolve()), errors=[exc])
    image = images_dir / basename_of(ann.filename) if ann.filename else None
    if image is None or not image.is_file():
        image = find_image_beside(images_dir, xml_path.stem) or image
    errors = list(ann.errors)
    if image is None or not image.is_file():
        image = image or images_dir / f"{xml_path.stem}.jpg"
        errors.append(ImageNotFoundError(str(xml_path), "filename",
                                         f"image {ann.filename!r} not found in {images_dir}",
                                         "put the image in JPEGImages/ or fix <filename>"))
    return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                        annotation_path=str(xml_path.resolve()), annotation_digest=ann.digest,
                        boxes=ann.boxes, declared_size=ann.declared_size, errors=errors)


def read_split_tags(root: Path) -> dict[str, tuple[str, ...]]:
    """Image stem -> split tags from ``ImageSets/Main``; ``trainval`` only where neither train nor val."""
    listed: dict[str, set[str]] = {}
    main = root / "ImageSets" / "Main"
    for split in SPLIT_FILES:
        split_file = main / f"{split}.txt"
        if not split_file.is_file():
            continue
        for line in split_file.read_text(errors="replace").splitlines():
            stem = line.strip().split(" ")[0]
            if stem:
                listed.setdefault(stem, set()).add(split)
    tags = {}
    for stem, splits in listed.items():
        named = splits & set(schema.SPLIT_TAGS)
        if "trainval" in splits and not named & {"train", "val"}:
            named.add(schema.TAG_TRAINVAL)
        tags[stem] = tuple(sorted(named))
    return tags
