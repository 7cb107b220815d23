"""What every format reader yields: plain records, before anything touches the database."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from curate.boxes import Box
from curate.errors import AnnotationError


@dataclass
class BoxRecord:
    """One ground-truth box in continuous absolute edges (see curate/boxes.py)."""

    label: str
    box: Box
    attributes: dict = field(default_factory=dict)


@dataclass
class SampleRecord:
    """One image and its annotation as a reader found them.

    ``boxes is None`` means the image has no annotation file at all (unlabeled); an empty list means
    it was annotated and holds no objects (an explicit negative).
    """

    filepath: str
    source: str
    source_format: str
    annotation_path: str | None = None
    annotation_digest: str | None = None
    boxes: list[BoxRecord] | None = None
    declared_size: tuple[int | None, int | None, int | None] | None = None
    tags: list[str] = field(default_factory=list)
    errors: list[AnnotationError] = field(default_factory=list)
    image_label: str | None = None  # an image-level class without boxes (e.g. a query image)


@dataclass
class SkippedFile:
    """An input file that yields no sample (e.g. a broken XML whose image cannot be found)."""

    path: str
    error: AnnotationError


@dataclass
class ReadContext:
    """What a reader is given besides the folder, and where it reports format-specific counts.

    ``stats``: counters the import report shows (e.g. ``duplicate_lines_collapsed``).
    ``notes``: lists the report keeps (e.g. URLs of images that were never downloaded).
    """

    source: str
    image_dirs: tuple[Path, ...] = ()
    stats: Counter = field(default_factory=Counter)
    notes: dict[str, list] = field(default_factory=dict)

    def note(self, key: str, value) -> None:
        self.notes.setdefault(key, []).append(value)
