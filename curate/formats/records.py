"""What every format reader yields: plain records, before anything touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class SkippedFile:
    """An input file that yields no sample (e.g. a broken XML whose image cannot be found)."""

    path: str
    error: AnnotationError
