"""Typed errors. Each names the file, the field and the fix, so a report line is enough to act on."""

from __future__ import annotations

from dataclasses import dataclass


class CurateError(Exception):
    """Base class for errors the CLI reports without a traceback."""


@dataclass
class AnnotationError(CurateError):
    """A problem with one input file. ``field`` is an XPath-like location inside the file, or ''."""

    path: str
    field: str = ""
    detail: str = ""
    fix: str = ""

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def kind(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        where = f"{self.path}: {self.field}: " if self.field else f"{self.path}: "
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.kind}: {where}{self.detail}{fix}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "field": self.field, "detail": self.detail,
                "fix": self.fix}


class MalformedXMLError(AnnotationError):
    """The file is not well-formed XML."""


class UnsafeXMLError(AnnotationError):
    """The file declares a DTD or entities (XXE / entity-expansion attack surface)."""


class MissingFieldError(AnnotationError):
    """A required element is absent or empty."""


class InvalidValueError(AnnotationError):
    """An element holds a value of the wrong type (e.g. a non-numeric coordinate)."""


class ImageNotFoundError(AnnotationError):
    """The annotation refers to an image that is not on disk."""


class UnreadableImageError(AnnotationError):
    """The image file exists but its header cannot be parsed."""


class ImportFailed(CurateError):
    """Raised under ``--on-error fail`` at the first bad input; wraps that error."""

    def __init__(self, error: AnnotationError):
        self.error = error
        super().__init__(f"import stopped at the first error (--on-error fail): {error}")
