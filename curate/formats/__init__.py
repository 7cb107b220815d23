"""Format readers, one small module each, all with the same shape:

* ``NAME`` (the ``--format`` value) and ``CONVENTION`` (curate.boxes.PixelConvention of its coordinates);
* ``detect(path) -> str | None``: a reason when the folder is in this format, else None (cheap: it only
  looks at names and a few bytes);
* ``count(path, ctx) -> int``: expected samples, for the progress bar;
* ``read(path, ctx) -> Iterator[SampleRecord | SkippedFile]``: boxes in continuous absolute edges; never
  raises for one bad file or line: the error goes on the record (or a SkippedFile) with the file and
  field named, and the caller's policy decides. Format-specific counts and lists go to ``ctx.stats`` and
  ``ctx.notes`` and end up in the import report.

Detection order matters: the most specific layout is tried first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from curate.errors import CurateError
from curate.formats import (belgalogos, coco, flickrlogos27, flickrlogos32, labelimg, logos_in_the_wild,
                            openlogo, voc, yolo)

# openlogo before voc (an OpenLogo folder is also a VOC layout); logos_in_the_wild before labelimg (its
# XML files look like LabelImg's).
_ORDERED = (openlogo, voc, coco, yolo, flickrlogos27, flickrlogos32, belgalogos, logos_in_the_wild, labelimg)
READERS: dict[str, ModuleType] = {m.NAME: m for m in _ORDERED}
DETECTION_ORDER = tuple(m.NAME for m in _ORDERED)


class UnknownFormatError(CurateError):
    pass


def detect_format(path: Path) -> tuple[str, str]:
    """``(format name, why)`` for the folder at ``path``."""
    found = _detect(path)
    if found:
        return found
    raise UnknownFormatError(
        f"{path}: no supported annotation format found (looked for: {', '.join(DETECTION_ORDER)}; "
        f"`curate formats` describes each); fix: point curate import at the folder that holds them, "
        f"or pass --format")


@dataclass(frozen=True)
class SourcePlan:
    """One dataset found under the imported path: where, in which format, and why we think so."""

    path: Path
    format: str
    reason: str
    source: str


def plan_sources(path: Path, fmt: str = "auto", source: str | None = None) -> list[SourcePlan]:
    """The datasets to import from ``path``: each subfolder holding a dataset, or the folder itself.

    When two or more immediate subfolders are datasets (``logos/FlickrLogos-27``, ``logos/BelgaLogos``,
    ``VOCdevkit/VOC2007`` + ``VOC2012``), each is a source named after its subfolder. Otherwise the folder
    is one source (a layout's own subfolders, such as ``Annotations/`` beside ``JPEGImages/``, or
    ``annotations/`` beside ``images/``, count as one dataset: only one of them holds annotations).
    ``--format`` skips detection and imports ``path`` as one source.
    """
    if fmt != "auto":
        get_reader(fmt)
        return [SourcePlan(path, fmt, "chosen with --format", source or path.name)]
    if logos_in_the_wild.owns_subfolders(path):  # brand subfolders are parts of one dataset
        return [SourcePlan(path, *detect_format(path), source or path.name)]
    subfolders = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    found = [(sub, hit) for sub in subfolders if (hit := _detect(sub))]
    if len(found) >= 2:
        prefix = f"{source}/" if source else ""
        return [SourcePlan(sub, name, reason, prefix + sub.name) for sub, (name, reason) in found]
    return [SourcePlan(path, *detect_format(path), source or path.name)]


def _detect(path: Path, exclude: tuple[str, ...] = ()) -> tuple[str, str] | None:
    for name in DETECTION_ORDER:
        if name not in exclude:
            reason = READERS[name].detect(path)
            if reason:
                return name, reason
    return None


def get_reader(name: str) -> ModuleType:
    try:
        return READERS[name]
    except KeyError:
        raise UnknownFormatError(f"unknown format {name!r}; choose one of: auto, "
                                 f"{', '.join(READERS)}") from None
