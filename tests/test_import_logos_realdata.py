"""The real FlickrLogos-27 and BelgaLogos annotation files imported end to end: every line accounted for.

Expected counts are computed here from the files with plain Python (split, set), independently of the
readers, and never hard-coded.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import pytest
from conftest import shared_dataset

from curate import schema
from curate.formats import belgalogos, flickrlogos27
from curate.ingest import import_folder

pytestmark = pytest.mark.realdata


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _one(folder: Path, suffix: str) -> Path:
    (found,) = folder.rglob(f"*{suffix}")
    return found


def test_flickrlogos27_imports_every_line_and_image(dataset_name):
    root = shared_dataset("flickrlogos27")
    training = _lines(_one(root, flickrlogos27.TRAINING_SUFFIX))
    query = _lines(_one(root, flickrlogos27.QUERY_SUFFIX))
    distinct_boxes = {(f[0], f[1], *f[3:]) for f in training}
    train_images, query_images = {f[0] for f in training}, {f[0] for f in query}
    image_files = [p for p in _one(root, flickrlogos27.IMAGES_SUFFIX).iterdir() if p.suffix == ".jpg"]

    report = import_folder(root, dataset_name=dataset_name, fmt=flickrlogos27.NAME, progress=False)

    stats = report.reader_stats
    assert stats["annotation_lines"] == len(training)
    assert stats["annotation_lines"] == (stats["duplicate_lines_collapsed"] + stats["unique_boxes"]
                                         + stats.get("invalid_lines", 0))
    assert stats["unique_boxes"] == len(distinct_boxes) == report.boxes
    assert stats["query_lines"] == len(query)
    assert stats["distractor_urls_not_downloaded"] == len(_lines(_one(root, flickrlogos27.DISTRACTOR_SUFFIX)))
    assert not report.errors and report.skipped_files == 0

    dataset = fo.load_dataset(dataset_name)
    tags = dataset.count_sample_tags()
    assert len(dataset) == report.samples_seen == len(image_files) == len(train_images) + len(query_images)
    assert tags["train"] == len(train_images) == report.labeled_images
    assert tags[schema.TAG_QUERY] == len(query_images)
    assert dataset.count(f"{schema.GROUND_TRUTH}.detections") == len(distinct_boxes)
    subsets_per_box = [subsets for sample in dataset.values(f"{schema.GROUND_TRUTH}.detections.subsets")
                       for subsets in sample or ()]
    assert sum(map(len, subsets_per_box)) == len({tuple(f) for f in training})  # one per (box, subset)

    queries = dataset.match_tags(schema.TAG_QUERY)
    assert queries.count(schema.GROUND_TRUTH) == 0  # no boxes, so never a negative
    assert queries.count(f"{schema.IMAGE_LABEL}.label") == len(query_images)


def test_belgalogos_imports_every_box_as_annotation_only_samples(dataset_name):
    root = shared_dataset("belgalogos-gt")
    rows = [line.split("\t") for line in (root / "qset3_internal_and_local.gt").read_text().splitlines()
            if line.strip()]
    images = {row[2] for row in rows}
    ok_counts = {True: sum(row[4] == "1" for row in rows), False: sum(row[4] == "0" for row in rows)}

    report = import_folder(root, dataset_name=dataset_name, fmt=belgalogos.NAME, progress=False)

    assert report.reader_stats["annotation_lines"] == len(rows) == report.boxes
    assert report.samples_seen == len(images)
    assert report.missing_images == report.reader_stats["images_missing"] == len(images)
    assert str(root.resolve()) in report.reader_notes["images_looked_for_in"]
    assert report.skipped_files == 0 and report.reader_stats.get("invalid_lines", 0) == 0

    dataset = fo.load_dataset(dataset_name)
    assert len(dataset) == len(images)
    assert dataset.count_sample_tags()[schema.TAG_MISSING_IMAGE] == len(images)
    assert dataset.count(f"{schema.GROUND_TRUTH}.detections") == len(rows)
    assert dataset.count_values(f"{schema.GROUND_TRUTH}.detections.ok") == ok_counts
    annotation_ids = dataset.values(f"{schema.GROUND_TRUTH}.detections.annotation_id", unwind=True)
    assert len(set(annotation_ids)) == len(rows)


def test_a_folder_of_three_logo_datasets_becomes_one_dataset_with_three_sources(tmp_path, dataset_name):
    """The headline use: `curate import logos/` with FlickrLogos-27 and BelgaLogos as published, plus a
    FlickrLogos-32 folder in its exact layout."""
    import fiftyone as fo
    from test_formats_logos import make_flickrlogos32

    from curate.ingest import import_path

    logos = tmp_path / "logos"
    logos.mkdir()
    (logos / "FlickrLogos-27").symlink_to(shared_dataset("flickrlogos27"), target_is_directory=True)
    (logos / "BelgaLogos").symlink_to(shared_dataset("belgalogos-gt"), target_is_directory=True)
    make_flickrlogos32(logos / "FlickrLogos-32")
    summary = import_path(logos, dataset_name=dataset_name, find_duplicates=False, progress=False)
    assert [(r.source, r.format) for r in summary.reports] == [
        ("BelgaLogos", "belgalogos"), ("FlickrLogos-27", "flickrlogos27"), ("FlickrLogos-32", "flickrlogos32")]
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.distinct(schema.SOURCE)) == {"BelgaLogos", "FlickrLogos-27", "FlickrLogos-32"}
    assert len(dataset) == sum(r.samples_seen for r in summary.reports)
