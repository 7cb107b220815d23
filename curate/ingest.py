"""``curate import``: a folder of annotations into a FiftyOne dataset.

Reads: a folder in one of the formats of curate/formats. Writes: samples (``filepath`` unique) with
``ground_truth``, ``metadata`` (true size from the image header), the declared size, ``source``,
``source_format``, ``annotation_path``, ``import_fingerprint``, ``import_errors``, split and status tags
(curate/schema.py), and one report appended to ``dataset.info[INFO_IMPORT_REPORTS]``.

Idempotent and resumable: samples are keyed by image path and carry a fingerprint of their annotation
and image file, so re-running the same command adds only what is missing (after a crash or kill -9),
updates only what changed, and never duplicates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from curate import schema
from curate.errors import (AnnotationError, CurateError, ImageNotFoundError, ImportFailed,
                           InvalidValueError, UnreadableImageError)
from curate.formats import detect_format, get_reader, plan_sources
from curate.formats.records import ReadContext, SampleRecord, SkippedFile
from curate.imageinfo import ImageHeader, read_header
from curate.labels import map_boxes
from curate.progress import track
from curate.report import STORED_REPORTS_MAX, ImportReport

log = logging.getLogger(__name__)

ON_ERROR_POLICIES = ("skip", "fail")


class DuplicateAnnotationError(AnnotationError):
    """Two annotation files describe the same image."""


@dataclass
class ImportSummary:
    """Everything one ``curate import`` did: a report per source, then the duplicate groups."""

    dataset: str
    reports: list[ImportReport]
    duplicates: dict = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        keys = ("samples_seen", "added", "updated", "unchanged", "boxes", "skipped_files",
                "samples_with_errors", "missing_images", "unlabeled_images")
        return {k: sum(getattr(r, k) for r in self.reports) for k in keys}

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "totals": self.totals(), "duplicates": self.duplicates,
                "sources": [r.to_dict() for r in self.reports]}


def import_path(path: str | Path, *, dataset_name: str, fmt: str = "auto", source: str | None = None,
                on_error: str = "skip", image_dirs: Sequence[str | Path] = (),
                find_duplicates: bool = True, progress: bool | None = None) -> ImportSummary:
    """``curate import``: every dataset found under ``path`` into ``dataset_name``, then duplicates.

    A folder holding several datasets in subfolders becomes one dataset with one ``source`` per
    subfolder (formats.plan_sources); exact and near duplicates are then grouped across all sources.
    """
    root = _existing_folder(path, "pass the folder that holds the annotations")
    plans = plan_sources(root, fmt, source)
    reports = [import_folder(p.path, dataset_name=dataset_name, fmt=p.format, reason=p.reason,
                             source=p.source, on_error=on_error, image_dirs=image_dirs, progress=progress)
               for p in plans]
    summary = ImportSummary(dataset_name, reports)
    if find_duplicates:
        from curate import dedup, fo_store

        dataset = fo_store.load_or_create(dataset_name)
        summary.duplicates = dedup.mark_duplicates(dataset, progress=progress).to_dict()
        dataset.info[schema.INFO_DUPLICATES] = summary.duplicates
        dataset.save()
    return summary


def _existing_folder(path: str | Path, fix: str) -> Path:
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise CurateError(f"{folder}: not a folder; fix: {fix}")
    return folder


def import_folder(path: str | Path, *, dataset_name: str, fmt: str = "auto", reason: str = "",
                  source: str | None = None, on_error: str = "skip",
                  image_dirs: Sequence[str | Path] = (), progress: bool | None = None) -> ImportReport:
    """Import one source at ``path`` into ``dataset_name`` (created if needed); return its report.

    ``image_dirs``: extra folders where the annotations' images are looked up.
    """
    from curate import fo_store  # heavy: imports fiftyone

    root = _existing_folder(path, "pass the folder that holds the annotations")
    image_dirs = [_existing_folder(p, "pass the folder holding the images (--images)") for p in image_dirs]
    if on_error not in ON_ERROR_POLICIES:
        raise CurateError(f"--on-error {on_error!r}: choose one of {', '.join(ON_ERROR_POLICIES)}")
    if fmt == "auto":
        fmt, reason = detect_format(root)
    reader = get_reader(fmt)
    reason = reason or "chosen with --format"
    report = ImportReport(dataset=dataset_name, root=str(root), format=fmt, format_reason=reason,
                          pixel_convention=reader.CONVENTION.value, source=source or root.name,
                          on_error=on_error, image_dirs=[str(p) for p in image_dirs],
                          started_at=dt.datetime.now().isoformat(timespec="seconds"))
    log.info("format %s: %s", fmt, reason)
    start = time.perf_counter()
    dataset = fo_store.load_or_create(dataset_name)
    fo_store.declare_import_fields(dataset)
    stored = fo_store.stored_samples(dataset)
    report.database_seconds = time.perf_counter() - start  # mongod start-up, schema, existing index
    state = _ImportState(report, stored, fo_store.BatchWriter(dataset),
                         label_map=dataset.info.get(schema.INFO_LABEL_MAP, {}))
    ctx = ReadContext(source=report.source, image_dirs=tuple(image_dirs))
    items = track(reader.read(root, ctx), total=reader.count(root, ctx),
                  description=f"importing {root.name}", enabled=progress)
    try:
        for item in items:
            _import_one(item, state)
    finally:
        state.writer.flush()  # what was read is kept, so the same command resumes after a failure
        fo_store.declare_box_attributes(dataset, state.attribute_types)
    report.reader_stats = dict(ctx.stats)
    report.reader_notes = ctx.notes
    report.stale = sum(1 for fp, s in stored.items() if s.source == report.source and fp not in state.seen)
    report.seconds = time.perf_counter() - start
    report.completed = True
    _save_report(dataset, report)
    return report


@dataclass
class _ImportState:
    report: ImportReport
    stored: dict  # filepath -> fo_store.StoredSample already in the dataset
    writer: object  # fo_store.BatchWriter
    label_map: dict[str, str]  # `curate labels --map`, applied to new boxes too
    seen: dict[str, str | None] = field(default_factory=dict)  # filepath -> annotation file
    attribute_types: dict[str, type] = field(default_factory=dict)  # box attribute -> Python type


def _import_one(item, state: _ImportState) -> None:
    report, seen = state.report, state.seen
    if isinstance(item, SkippedFile):
        _record_errors(report, [item.error])
        report.skipped_files += 1
        return
    if item.filepath in seen:
        first = seen[item.filepath]
        _record_errors(report, [DuplicateAnnotationError(
            item.annotation_path or item.filepath, "filename",
            f"the image {item.filepath} is already described by {first}; this file was ignored",
            "delete one of the two annotation files or point <filename> at the right image")])
        report.skipped_files += 1
        return
    seen[item.filepath] = item.annotation_path
    header = _read_header_into(item)
    _check_size_known(item, header)
    _record_errors(report, item.errors)
    if item.boxes:
        report.count_classes([b.label for b in item.boxes])  # as the files name them
        map_boxes(item.boxes, state.label_map)
        for b in item.boxes:
            state.attribute_types.update((k, type(v)) for k, v in b.attributes.items() if v is not None)
    fields, tags = _sample_fields(item, header)
    _count(report, item, tags)
    report.samples_seen += 1
    previous = state.stored.get(item.filepath)
    if previous is None:
        state.writer.insert(item.filepath, fields, tags)
        report.added += 1
    elif previous.fingerprint != fields[schema.FINGERPRINT]:
        state.writer.update(previous, fields, tags)
        report.updated += 1
    else:
        report.unchanged += 1


def _record_errors(report: ImportReport, errors: list[AnnotationError]) -> None:
    for error in errors:
        if report.on_error == "fail":
            raise ImportFailed(error)
        report.add_error(error)


def _read_header_into(item: SampleRecord) -> ImageHeader | None:
    if any(isinstance(e, ImageNotFoundError) for e in item.errors):
        return None
    try:
        return read_header(item.filepath)
    except UnreadableImageError as exc:
        item.errors.append(exc)
        return None


def _status_tags(item: SampleRecord, header: ImageHeader | None) -> list[str]:
    tags = list(item.tags)
    kinds = {type(e) for e in item.errors}
    if ImageNotFoundError in kinds:
        tags.append(schema.TAG_MISSING_IMAGE)
    if UnreadableImageError in kinds:
        tags.append(schema.TAG_UNREADABLE_IMAGE)
    if kinds - {ImageNotFoundError, UnreadableImageError}:
        tags.append(schema.TAG_IMPORT_ERROR)
    if item.annotation_path is None and schema.TAG_UNLABELED not in tags:
        tags.append(schema.TAG_UNLABELED)
    return sorted(set(tags))


def _sample_fields(item: SampleRecord, header: ImageHeader | None) -> tuple[dict, list[str]]:
    from curate import fo_store

    tags = _status_tags(item, header)
    width, height = _image_wh(item, header)
    declared = item.declared_size or (None, None, None)
    fields = {
        schema.SOURCE: item.source,
        schema.SOURCE_FORMAT: item.source_format,
        schema.ANNOTATION_PATH: item.annotation_path,
        schema.DECLARED_WIDTH: declared[0],
        schema.DECLARED_HEIGHT: declared[1],
        schema.DECLARED_DEPTH: declared[2],
        schema.IMPORT_ERRORS: [str(e) for e in item.errors] or None,
        schema.METADATA: fo_store.image_metadata_doc(header.width, header.height, header.size_bytes,
                                                     header.mime_type, header.num_channels)
        if header else None,
        schema.CONTENT_HASH: None,  # (re)computed by dedup for new and changed samples
        schema.PERCEPTUAL_HASH: None,
        schema.IMAGE_LABEL: fo_store.classification_doc(item.image_label) if item.image_label else None,
        schema.GROUND_TRUTH: None if item.boxes is None else fo_store.detections_doc(item.boxes, width,
                                                                                     height),
    }
    fields[schema.FINGERPRINT] = _fingerprint(item, header, tags)
    return fields, tags


def _image_wh(item: SampleRecord, header: ImageHeader | None) -> tuple[int | None, int | None]:
    """The size boxes are made relative to: the real one, else the declared one (missing image)."""
    if header:
        return header.width, header.height
    if item.declared_size and all(item.declared_size[:2]):
        return item.declared_size[0], item.declared_size[1]
    return None, None


def _check_size_known(item: SampleRecord, header: ImageHeader | None) -> None:
    """Boxes with no size to be relative to are kept in pixels; say so unless the missing image says it."""
    missing = any(isinstance(e, ImageNotFoundError) for e in item.errors)
    if item.boxes and not missing and not all(_image_wh(item, header)):
        item.errors.append(InvalidValueError(
            item.annotation_path or item.filepath, "size", "neither the image nor <size> gives the "
            "image size, so the boxes are kept without relative coordinates",
            "add the image, or <size><width>/<height> to the XML"))


def _fingerprint(item: SampleRecord, header: ImageHeader | None, tags: list[str]) -> str:
    facts = [item.annotation_digest, item.image_label, item.source, header and (header.size_bytes, header.mtime_ns),
             tags, [str(e) for e in item.errors]]
    return hashlib.sha1(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _count(report: ImportReport, item: SampleRecord, tags: list[str]) -> None:
    if item.boxes is None:
        report.unlabeled_images += item.annotation_path is None
    else:
        report.labeled_images += 1
        report.boxes += len(item.boxes)
    report.missing_images += schema.TAG_MISSING_IMAGE in tags
    report.unreadable_images += schema.TAG_UNREADABLE_IMAGE in tags
    report.samples_with_errors += bool(item.errors)


def _save_report(dataset, report: ImportReport) -> None:
    reports = list(dataset.info.get(schema.INFO_IMPORT_REPORTS, []))
    reports.append(report.to_stored_dict())
    dataset.info[schema.INFO_IMPORT_REPORTS] = reports[-STORED_REPORTS_MAX:]
    dataset.save()
