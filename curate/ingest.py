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
from pathlib import Path
from typing import Sequence

from curate import schema
from curate.errors import (AnnotationError, CurateError, ImageNotFoundError, ImportFailed,
                           InvalidValueError, UnreadableImageError)
from curate.formats import detect_format, get_reader
from curate.formats.records import ReadContext, SampleRecord, SkippedFile
from curate.imageinfo import ImageHeader, read_header
from curate.progress import track
from curate.report import STORED_REPORTS_MAX, ImportReport

log = logging.getLogger(__name__)

ON_ERROR_POLICIES = ("skip", "fail")


class DuplicateAnnotationError(AnnotationError):
    """Two annotation files describe the same image."""


def import_folder(path: str | Path, *, dataset_name: str, fmt: str = "auto", source: str | None = None,
                  on_error: str = "skip", image_dirs: Sequence[str | Path] = (),
                  progress: bool | None = None) -> ImportReport:
    """Import ``path`` into the dataset ``dataset_name`` (created if needed) and return the report.

    ``image_dirs``: extra folders where the annotations' images are looked up.
    """
    from curate import fo_store  # heavy: imports fiftyone

    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise CurateError(f"{root}: not a folder; fix: pass the folder that holds the annotations")
    image_dirs = [Path(p).expanduser().resolve() for p in image_dirs]
    for folder in image_dirs:
        if not folder.is_dir():
            raise CurateError(f"--images {folder}: not a folder; fix: pass the folder holding the images")
    if on_error not in ON_ERROR_POLICIES:
        raise CurateError(f"--on-error {on_error!r}: choose one of {', '.join(ON_ERROR_POLICIES)}")
    fmt, reason = detect_format(root) if fmt == "auto" else (fmt, "chosen with --format")
    reader = get_reader(fmt)
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
    writer = fo_store.BatchWriter(dataset)
    seen: dict[str, str | None] = {}
    ctx = ReadContext(source=report.source, image_dirs=tuple(image_dirs))
    items = track(reader.read(root, ctx), total=reader.count(root, ctx),
                  description=f"importing {root.name}", enabled=progress)
    try:
        for item in items:
            _import_one(item, report, stored, writer, seen)
    finally:
        writer.flush()  # what was read is kept, so the same command resumes after a failure
    report.reader_stats = dict(ctx.stats)
    report.reader_notes = ctx.notes
    report.stale = sum(1 for fp, s in stored.items() if s.source == report.source and fp not in seen)
    report.seconds = time.perf_counter() - start
    report.completed = True
    _save_report(dataset, report)
    return report


def _import_one(item, report: ImportReport, stored: dict, writer, seen: dict) -> None:
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
    fields, tags = _sample_fields(item, header)
    report.samples_seen += 1
    _count(report, item, tags)
    previous = stored.get(item.filepath)
    if previous is None:
        writer.insert(item.filepath, fields, tags)
        report.added += 1
    elif previous.fingerprint != fields[schema.FINGERPRINT]:
        writer.update(previous, fields, tags)
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
    if item.boxes and not all(_image_wh(item, header)):
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
        report.count_classes([b.label for b in item.boxes])
    report.missing_images += schema.TAG_MISSING_IMAGE in tags
    report.unreadable_images += schema.TAG_UNREADABLE_IMAGE in tags
    report.samples_with_errors += bool(item.errors)


def _save_report(dataset, report: ImportReport) -> None:
    reports = list(dataset.info.get(schema.INFO_IMPORT_REPORTS, []))
    reports.append(report.to_stored_dict())
    dataset.info[schema.INFO_IMPORT_REPORTS] = reports[-STORED_REPORTS_MAX:]
    dataset.save()
