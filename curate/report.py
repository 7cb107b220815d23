"""The import report: every file accounted for. Printed, saved on the dataset, available as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from curate.errors import AnnotationError

STORED_ERRORS_MAX = 1000  # errors kept in dataset.info (a MongoDB document is capped at 16 MB)
STORED_REPORTS_MAX = 50  # import reports kept in dataset.info, newest last


@dataclass
class ImportReport:
    dataset: str
    root: str
    format: str
    format_reason: str
    pixel_convention: str
    source: str
    on_error: str
    image_dirs: list[str] = field(default_factory=list)
    started_at: str = ""
    seconds: float = 0.0  # whole import, database start-up included
    database_seconds: float = 0.0  # connecting (may start mongod), declaring fields, reading the index
    samples_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0  # samples of this source in the dataset whose files were not found this time
    labeled_images: int = 0
    unlabeled_images: int = 0
    boxes: int = 0
    missing_images: int = 0
    unreadable_images: int = 0
    samples_with_errors: int = 0
    skipped_files: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    reader_stats: dict[str, int] = field(default_factory=dict)  # format-specific counts
    reader_notes: dict[str, list] = field(default_factory=dict)  # format-specific lists (e.g. URLs)
    errors: list[dict] = field(default_factory=list)
    completed: bool = False

    def add_error(self, error: AnnotationError) -> None:
        self.errors.append(error.to_dict())

    def count_classes(self, labels: list[str]) -> None:
        for label in labels:
            self.classes[label] = self.classes.get(label, 0) + 1

    @property
    def images_per_second(self) -> float:
        """Rate of reading and writing samples, database start-up excluded."""
        busy = self.seconds - self.database_seconds
        return self.samples_seen / busy if busy > 0 else 0.0

    def error_kinds(self) -> dict[str, int]:
        return dict(Counter(e["kind"] for e in self.errors).most_common())

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": dict(sorted(self.classes.items())),
                "error_kinds": self.error_kinds()}

    def to_stored_dict(self) -> dict:
        stored = self.to_dict()
        stored["errors_omitted"] = max(0, len(self.errors) - STORED_ERRORS_MAX)
        stored["errors"] = self.errors[:STORED_ERRORS_MAX]
        stored["reader_notes"] = {k: v[:STORED_ERRORS_MAX] for k, v in self.reader_notes.items()}
        return stored
