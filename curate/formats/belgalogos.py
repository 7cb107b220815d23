"""BelgaLogos ground truth: ``*.gt`` text files (e.g. ``qset3_internal_and_local.gt``), one box a line::

    id<TAB>brand<TAB>image<TAB>type<TAB>ok<TAB>x1<TAB>y1<TAB>x2<TAB>y2
    Adidas_0000     Adidas  07686040.jpg    logo    1       392     257     422     274

Coordinates are 0-based pixel edges (``EDGES_ZERO_BASED``), taken as written: ``x1``/``y1`` are 0 on
boxes at the image border, so they are not 1-based, and BelgaLogos users crop with them as edges
(PIL ``crop((x1, y1, x2, y2))``). Boxes are kept as written, inverted ones included (``curate clean``
flags them).

Kept per box: ``annotation_id`` (the ``id`` column), ``logo_type`` (the ``type`` column) and ``ok``: the
annotators' visibility verdict, ``True`` for a clearly visible logo, ``False`` for "junk" (the logo is
there but partly hidden, tiny or too distorted to count as a clean example). Junk boxes are real logos:
they stay in the ground truth so that a detector finding one is not scored a false positive.

Images (the 10,000 BelgaLogos photos ship separately) are looked up in the ``--images`` folders, beside
the ``.gt`` file and in its ``images/`` folder (where the download script unpacks them). When an image is
absent the annotation is still imported as an annotation-only sample carrying an ``ImageNotFoundError``
(ingest tags it ``missing_image``); ``ctx.stats['images_missing']`` counts them and
``ctx.notes['images_looked_for_in']`` lists the folders searched. The original file has a couple of lines
separated by spaces instead of tabs; they are read the same way and counted (``space_separated_lines``).
Several ``.gt`` files in one folder are read together; a line repeated verbatim counts once
(``duplicate_lines_collapsed``), so ``annotation_lines == boxes + invalid_lines + duplicate_lines_collapsed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from curate.boxes import PixelConvention, source_to_edges
from curate.errors import AnnotationError, ImageNotFoundError, InvalidValueError, MissingFieldError
from curate.formats.text_fields import digest_of_lines, find_folder, parse_fields
from curate.formats.records import BoxRecord, ReadContext, SampleRecord, SkippedFile

NAME = "belgalogos"
CONVENTION = PixelConvention.EDGES_ZERO_BASED
FIELDS = ("id", "brand", "image", "type", "ok", "x1", "y1", "x2", "y2")
COORDINATES = ("x1", "y1", "x2", "y2")
GT_SUFFIX = ".gt"
IMAGES_FOLDER = "images"  # what BelgaLogos' images.tar.gz unpacks to
_OK_VALUES = {"1": True, "0": False}
_FIX = "write the line as id, brand, image, type, ok, x1, y1, x2, y2 separated by tabs, or delete it"


@dataclass
class _ImageEntry:
    gt_file: Path
    first_line: int
    lines: list[str] = field(default_factory=list)
    boxes: list[BoxRecord] = field(default_factory=list)
    errors: list[AnnotationError] = field(default_factory=list)


def _is_ground_truth_file(path: Path) -> bool:
    if path.suffix != GT_SUFFIX or not path.is_file():
        return False
    with path.open("r", errors="replace") as handle:
        return len(handle.readline().rstrip("\r\n").split("\t")) == len(FIELDS)


def ground_truth_files(path: Path) -> list[Path]:
    folder = find_folder(path, lambda f: any(_is_ground_truth_file(p) for p in f.iterdir()))
    return [] if folder is None else sorted(p for p in folder.iterdir() if _is_ground_truth_file(p))


def detect(path: Path) -> str | None:
    files = ground_truth_files(path)
    if not files:
        return None
    return f"found BelgaLogos ground truth {files[0]} (9 tab-separated fields a line)"


def count(path: Path, ctx: ReadContext) -> int:
    images = set()
    for gt_file in ground_truth_files(path):
        for line in gt_file.read_text(errors="replace").splitlines():
            tokens = _split(line)
            if len(tokens) > 2:
                images.add(tokens[2])
    return len(images)


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    files = ground_truth_files(path)
    if not files:
        raise FileNotFoundError(f"{path}: no BelgaLogos *.gt file found")
    entries: dict[str, _ImageEntry] = {}
    for gt_file in files:
        yield from _read_ground_truth(gt_file, entries, ctx)
    search = _image_folders(files[0].parent, ctx)
    missing = 0
    for name in sorted(entries):
        record = _record(name, entries[name], search, ctx.source)
        missing += any(isinstance(e, ImageNotFoundError) for e in record.errors)
        yield record
    if missing:
        ctx.stats["images_missing"] += missing
        for folder in search:
            ctx.note("images_looked_for_in", str(folder))


def _split(line: str) -> list[str]:
    tokens = [t.strip() for t in line.split("\t")]
    return tokens if len(tokens) == len(FIELDS) else line.split()


def _is_space_separated(line: str) -> bool:
    return len(line.split("\t")) != len(FIELDS) and len(line.split()) == len(FIELDS)


def _read_ground_truth(gt_file: Path, entries: dict[str, _ImageEntry],
                       ctx: ReadContext) -> Iterator[SkippedFile]:
    for line_no, line in enumerate(gt_file.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        ctx.stats["annotation_lines"] += 1
        tokens = _split(line)
        if len(tokens) < 3:
            ctx.stats["invalid_lines"] += 1
            yield SkippedFile(str(gt_file), MissingFieldError(
                str(gt_file), f"line {line_no}: {FIELDS[len(tokens)]}",
                f"{len(tokens)} fields, expected {len(FIELDS)}; the image is not named", _FIX))
            continue
        ctx.stats["space_separated_lines"] += _is_space_separated(line)
        entry = entries.setdefault(tokens[2], _ImageEntry(gt_file=gt_file, first_line=line_no))
        if line.strip() in entry.lines:  # the same line in two .gt files (or twice in one)
            ctx.stats["duplicate_lines_collapsed"] += 1
            continue
        entry.lines.append(line.strip())
        try:
            entry.boxes.append(_box(tokens, str(gt_file), line_no))
        except AnnotationError as exc:
            ctx.stats["invalid_lines"] += 1
            entry.errors.append(exc)


def _box(tokens: list[str], path: str, line_no: int) -> BoxRecord:
    values = parse_fields(tokens, FIELDS, COORDINATES, path=path, line_no=line_no, fix=_FIX)
    if values["ok"] not in _OK_VALUES:
        raise InvalidValueError(path, f"line {line_no}: ok", f"{values['ok']!r} is not 0 or 1",
                                "write 1 for a clearly visible logo, 0 for junk")
    coords = [values[name] for name in COORDINATES]
    attributes = {"ok": _OK_VALUES[values["ok"]], "logo_type": values["type"], "annotation_id": values["id"]}
    return BoxRecord(values["brand"], source_to_edges(coords, CONVENTION), attributes)


def _image_folders(gt_folder: Path, ctx: ReadContext) -> tuple[Path, ...]:
    return (*ctx.image_dirs, gt_folder, gt_folder / IMAGES_FOLDER)


def _record(name: str, entry: _ImageEntry, search: tuple[Path, ...], source: str) -> SampleRecord:
    image = next((folder / name for folder in search if (folder / name).is_file()), None)
    errors = list(entry.errors)
    if image is None:
        image = search[0] / name
        errors.append(ImageNotFoundError(
            str(entry.gt_file), f"line {entry.first_line}: image",
            f"image {name!r} not found in {', '.join(str(f) for f in search)}",
            "download the BelgaLogos images and pass their folder with --images"))
    return SampleRecord(filepath=str(image.resolve()), source=source, source_format=NAME,
                        annotation_path=str(entry.gt_file.resolve()),
                        annotation_digest=digest_of_lines(entry.lines), boxes=entry.boxes, errors=errors)
