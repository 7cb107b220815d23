"""Format readers, one module each. A reader module has ``NAME``, ``CONVENTION``, ``detect(path)``
(a reason string when it recognises the folder, else None), ``count(path, image_dirs)`` (expected samples,
for the progress bar) and ``read(path, source, image_dirs)`` (yields SampleRecord / SkippedFile);
``image_dirs`` are extra folders to look for images in (``curate import --images``).

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
