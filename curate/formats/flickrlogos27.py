"""FlickrLogos-27 annotation text files, as published in ``flickr_logos_27_dataset/``::

    flickr_logos_27_dataset_training_set_annotation.txt  image class subset x1 y1 x2 y2  (space separated)
    flickr_logos_27_dataset_query_set_annotation.txt     image<TAB>class
    flickr_logos_27_dataset_distractor_set_urls.txt      one URL a line (images never shipped)
    flickr_logos_27_dataset_images/                      training and query images

Coordinates are 0-based pixel edges (``EDGES_ZERO_BASED``), taken as written: the real file has boxes
starting at 0 and boxes ending exactly at the image width or height, which only edges allow (0 is outside
1-based indices, W is outside 0-based inclusive indices).

Kept: the training file lists one box once per training subset (1-6) it belongs to; identical
``(image, class, x1, y1, x2, y2)`` lines collapse to one box whose ``subsets`` attribute lists the subset
numbers, and ``ctx.stats`` accounts for every line: ``annotation_lines == duplicate_lines_collapsed +
unique_boxes + invalid_lines``. Training images are tagged ``train``. Query images contain one logo but no
box: they get ``image_label`` and the ``query`` tag and ``boxes=None`` (not ``[]``), so no stage can take
them for a background negative. Images without any annotation line are unlabeled. The distractor images
were never downloaded: their URLs are counted (``distractor_urls_not_downloaded``) and the list noted.

The small line-parsing helpers at the bottom are shared by the other text-file readers (BelgaLogos,
FlickrLogos-32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from curate import schema
from curate.boxes import PixelConvention, source_to_edges
from curate.errors import AnnotationError, ImageNotFoundError, InvalidValueError
from curate.formats.files import is_image_name
from curate.formats.records import BoxRecord, ReadContext, SampleRecord, SkippedFile
from curate.formats.text_fields import digest_of_lines, find_folder, parse_fields

NAME = "flickrlogos27"
CONVENTION = PixelConvention.EDGES_ZERO_BASED
TRAINING_SUFFIX = "_training_set_annotation.txt"
QUERY_SUFFIX = "_query_set_annotation.txt"
DISTRACTOR_SUFFIX = "_distractor_set_urls.txt"
IMAGES_SUFFIX = "_images"
TRAINING_FIELDS = ("image", "class", "subset", "x1", "y1", "x2", "y2")
QUERY_FIELDS = ("image", "class")
COORDINATES = ("x1", "y1", "x2", "y2")
SEARCH_DEPTH = 2  # the download unpacks to flickr_logos_27_dataset/ one level below the folder given


@dataclass
class _ImageEntry:
    """Everything the annotation files say about one image, gathered before the record is built."""

    annotation_path: Path
    first_line: int
    lines: list[str] = field(default_factory=list)
    boxes: dict[tuple, BoxRecord] | None = None
    image_label: str | None = None
    tags: set[str] = field(default_factory=set)
    errors: list[AnnotationError] = field(default_factory=list)


def _has_training_file(folder: Path) -> bool:
    return any(p.name.endswith(TRAINING_SUFFIX) for p in folder.iterdir() if p.is_file())


def find_dataset_folder(path: Path) -> Path | None:
    return find_folder(path, _has_training_file)


def detect(path: Path) -> str | None:
    folder = find_dataset_folder(path)
    return None if folder is None else f"found FlickrLogos-27 *{TRAINING_SUFFIX} in {folder}"


def count(path: Path, ctx: ReadContext) -> int:
    folder = find_dataset_folder(path)
    images = _images_dir(folder) if folder else None
    return sum(1 for p in images.iterdir() if is_image_name(p.name)) if images else 0


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    folder = find_dataset_folder(path)
    if folder is None:
        raise FileNotFoundError(f"{path}: no *{TRAINING_SUFFIX} found")
    entries: dict[str, _ImageEntry] = {}
    for file in _files_ending(folder, TRAINING_SUFFIX):
        yield from _read_lines(file, entries, ctx, _add_training_line, "annotation_lines", "invalid_lines")
    for file in _files_ending(folder, QUERY_SUFFIX):
        yield from _read_lines(file, entries, ctx, _add_query_line, "query_lines", "invalid_query_lines")
    for file in _files_ending(folder, DISTRACTOR_SUFFIX):
        urls = [line for line in file.read_text(errors="replace").splitlines() if line.strip()]
        ctx.stats["distractor_urls_not_downloaded"] += len(urls)
        ctx.note("distractor_url_lists", str(file))
    images_dir = _images_dir(folder) or folder
    search = (images_dir, *ctx.image_dirs)
    for name in sorted(entries):
        yield _record(name, entries[name], search, ctx.source)
    for image in sorted(images_dir.iterdir()):
        if is_image_name(image.name) and image.name not in entries:
            yield SampleRecord(filepath=str(image.resolve()), source=ctx.source, source_format=NAME,
                               tags=[schema.TAG_UNLABELED])


def _files_ending(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))


def _images_dir(folder: Path) -> Path | None:
    found = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.endswith(IMAGES_SUFFIX))
    return found[0] if found else None


LineHandler = Callable[[list[str], Path, int, _ImageEntry, ReadContext], None]


def _read_lines(file: Path, entries: dict[str, _ImageEntry], ctx: ReadContext, handler: LineHandler,
                lines_key: str, invalid_key: str) -> Iterator[SkippedFile]:
    """Feeds each line to ``handler``; a line it rejects becomes an error on its image's record."""
    for line_no, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        ctx.stats[lines_key] += 1
        if not is_image_name(tokens[0]):
            ctx.stats[invalid_key] += 1
            yield SkippedFile(str(file), InvalidValueError(
                str(file), f"line {line_no}: image", f"{tokens[0]!r} is not an image file name",
                "start the line with the image file name, or delete the line"))
            continue
        entry = entries.setdefault(tokens[0], _ImageEntry(annotation_path=file, first_line=line_no))
        entry.lines.append(line.strip())
        try:
            handler(tokens, file, line_no, entry, ctx)
        except AnnotationError as exc:
            ctx.stats[invalid_key] += 1
            entry.errors.append(exc)


def _add_training_line(tokens, file: Path, line_no: int, entry: _ImageEntry, ctx: ReadContext) -> None:
    entry.tags.add("train")
    if entry.boxes is None:
        entry.boxes = {}
    values = parse_fields(tokens, TRAINING_FIELDS, COORDINATES, path=str(file), line_no=line_no,
                          fix="write the line as `image class subset x1 y1 x2 y2`, or delete it")
    subset = _subset(values["subset"], str(file), line_no)
    coords = tuple(values[name] for name in COORDINATES)
    key = (values["class"], *coords)
    box = entry.boxes.get(key)
    if box is None:
        entry.boxes[key] = BoxRecord(values["class"], source_to_edges(coords, CONVENTION),
                                     {"subsets": [subset]})
        ctx.stats["unique_boxes"] += 1
        return
    ctx.stats["duplicate_lines_collapsed"] += 1
    box.attributes["subsets"] = sorted(set(box.attributes["subsets"]) | {subset})


def _subset(raw: str, path: str, line_no: int) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidValueError(path, f"line {line_no}: subset", f"{raw!r} is not a whole number",
                                "write the training subset number (1-6)") from None


def _add_query_line(tokens, file: Path, line_no: int, entry: _ImageEntry, ctx: ReadContext) -> None:
    entry.tags.add(schema.TAG_QUERY)
    label = parse_fields(tokens, QUERY_FIELDS, (), path=str(file), line_no=line_no,
                         fix="write the line as `image<TAB>class`, or delete it")["class"]
    if entry.image_label not in (None, label):
        raise InvalidValueError(str(file), f"line {line_no}: class",
                                f"the image is already listed as {entry.image_label!r}",
                                "keep one query line per image")
    entry.image_label = label


def _record(name: str, entry: _ImageEntry, search: Sequence[Path], source: str) -> SampleRecord:
    image = next((folder / name for folder in search if (folder / name).is_file()), None)
    errors = list(entry.errors)
    if image is None:
        image = search[0] / name
        errors.append(ImageNotFoundError(
            str(entry.annotation_path), f"line {entry.first_line}: image",
            f"image {name!r} not found in {', '.join(str(f) for f in search)}",
            "put the image in the dataset's images folder or pass its folder with --images"))
    return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                        annotation_path=str(entry.annotation_path.resolve()),
                        annotation_digest=digest_of_lines(entry.lines),
                        boxes=None if entry.boxes is None else list(entry.boxes.values()),
                        tags=sorted(entry.tags), errors=errors, image_label=entry.image_label)
