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

from pathlib import Path
from types import ModuleType

from curate.errors import CurateError
from curate.formats import labelimg, voc

READERS: dict[str, ModuleType] = {voc.NAME: voc, labelimg.NAME: labelimg}
DETECTION_ORDER = (voc.NAME, labelimg.NAME)


class UnknownFormatError(CurateError):
    pass


def detect_format(path: Path) -> tuple[str, str]:
    """``(format name, why)`` for the folder at ``path``."""
    for name in DETECTION_ORDER:
        reason = READERS[name].detect(path)
        if reason:
            return name, reason
    raise UnknownFormatError(
        f"{path}: no supported annotation format found (looked for a Pascal VOC layout with "
        f"Annotations/ and JPEGImages/, and for LabelImg <annotation> XML files); "
        f"fix: point curate import at the folder that holds them, or pass --format")


def get_reader(name: str) -> ModuleType:
    try:
        return READERS[name]
    except KeyError:
        raise UnknownFormatError(f"unknown format {name!r}; choose one of: auto, "
                                 f"{', '.join(READERS)}") from None
