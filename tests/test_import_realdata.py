"""Real annotation folders from ../shared/data: every image and every box accounted for.

Expected counts are computed here from the files themselves (not hard-coded), with the standard
library's XML parser, independently of the importer.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import fiftyone as fo
import pytest
from conftest import shared_dataset

from curate import schema
from curate.ingest import import_folder

pytestmark = pytest.mark.realdata


def _xml_box_count(xml_files) -> int:
    return sum(len(ET.parse(p).getroot().findall("object")) for p in xml_files)


def _image_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def _assert_sizes_match_headers(dataset) -> None:
    from PIL import Image

    for sample in dataset.take(20, seed=0):
        with Image.open(sample.filepath) as image:
            assert (sample.metadata.width, sample.metadata.height) == image.size


def test_raccoon_imports_every_image_and_box(dataset_name):
    root = shared_dataset("raccoon")
    report = import_folder(root, dataset_name=dataset_name, progress=False)
    dataset = fo.load_dataset(dataset_name)
    assert report.format == "labelimg"
    assert len(dataset) == _image_count(root / "images") == report.samples_seen
    assert report.boxes == dataset.count("ground_truth.detections") == _xml_box_count(
        (root / "annotations").glob("*.xml"))
    assert report.labeled_images == len(list((root / "annotations").glob("*.xml")))
    _assert_sizes_match_headers(dataset)
    assert import_folder(root, dataset_name=dataset_name, progress=False).added == 0


def test_voc2012_sample_with_images_in_a_separate_folder(dataset_name):
    base = shared_dataset("voc2012-sample") / "data" / "database"
    xml_dir, image_dir = base / "gts" / "pascalvoc_format", base / "images"
    report = import_folder(xml_dir, dataset_name=dataset_name, image_dirs=[image_dir], progress=False)
    dataset = fo.load_dataset(dataset_name)
    xml_files = sorted(xml_dir.glob("*.xml"))
    assert len(dataset) == _image_count(image_dir) == len(xml_files)
    assert report.unlabeled_images == 0 and report.missing_images == 0 and not report.errors
    assert dataset.count("ground_truth.detections") == _xml_box_count(xml_files)
    difficult = sum(o.findtext("difficult", "0").strip() == "1"
                    for p in xml_files for o in ET.parse(p).getroot().findall("object"))
    assert dataset.count_values("ground_truth.detections.difficult").get(True, 0) == difficult
    _assert_sizes_match_headers(dataset)


def test_voc2012_sample_whole_folder_reports_duplicates_and_foreign_xml(dataset_name):
    """Pointing at the folder that holds several export formats: nothing crashes, all is reported."""
    base = shared_dataset("voc2012-sample") / "data" / "database"
    report = import_folder(base, dataset_name=dataset_name, progress=False)
    assert len(fo.load_dataset(dataset_name)) == _image_count(base / "images")
    kinds = report.error_kinds()
    assert kinds.get("DuplicateAnnotationError", 0) > 0  # the same boxes in two export folders
    assert report.skipped_files == sum(kinds.values())


def test_fruit_train_and_test(dataset_name):
    root = shared_dataset("fruit")
    for part in ("train", "test_zip/test"):
        import_folder(root / part, dataset_name=dataset_name, source=part, progress=False)
    dataset = fo.load_dataset(dataset_name)
    expected = _image_count(root / "train") + _image_count(root / "test_zip" / "test")
    assert len(dataset) == expected
    assert set(dataset.distinct(schema.SOURCE)) == {"train", "test_zip/test"}
    xmls = [*(root / "train").rglob("*.xml"), *(root / "test_zip" / "test").glob("*.xml")]
    problems = dataset.match_tags(list(schema.UNUSABLE_TAGS)).count("ground_truth.detections")
    assert dataset.count("ground_truth.detections") + problems >= _xml_box_count(xmls) - problems
