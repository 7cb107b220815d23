"""COCO JSON and YOLO txt readers: hand-made fixtures, bad lines, and agreement with the VOC XML of the
same real images (voc2012-sample ships one ground truth in several formats)."""

from __future__ import annotations

import json

import fiftyone as fo
import pytest
from conftest import shared_dataset
from factories import make_image

from curate.formats import coco, detect_format, yolo
from curate.formats.records import ReadContext
from curate.ingest import import_folder


def _coco(root, annotations, images=None):
    root.mkdir(parents=True, exist_ok=True)
    make_image(root / "images" / "a.jpg", 100, 50)
    doc = {"images": images or [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
           "annotations": annotations, "categories": [{"id": 7, "name": "cat"}]}
    (root / "instances.json").write_text(json.dumps(doc))
    return root


def test_coco_box_is_xywh_in_pixels(tmp_path):
    root = _coco(tmp_path / "c", [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 50, 40],
                                   "iscrowd": 0, "area": 2000}])
    assert detect_format(root)[0] == "coco"
    (record,) = coco.read(root, ReadContext(source="c"))
    assert record.boxes[0].label == "cat" and record.boxes[0].box == (10, 5, 60, 45)
    assert record.boxes[0].attributes["iscrowd"] is False and record.declared_size[:2] == (100, 50)


def test_coco_bad_annotations_are_typed_and_others_survive(tmp_path):
    root = _coco(tmp_path / "c", [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 50, 40]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [10, "x", 50, 40]},
        {"id": 3, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}])
    (record,) = coco.read(root, ReadContext(source="c"))
    assert len(record.boxes) == 1
    assert [e.field for e in record.errors] == ["annotations[id=2].bbox", "annotations[id=3].category_id"]


def test_coco_missing_image_and_unreadable_json(tmp_path):
    root = _coco(tmp_path / "c", [], images=[{"id": 1, "file_name": "gone.jpg", "width": 10, "height": 10}])
    (record,) = coco.read(root, ReadContext(source="c"))
    assert type(record.errors[0]).__name__ == "ImageNotFoundError" and record.boxes == []
    (root / "instances.json").write_text('{"images": [], "annotations": [')
    (skipped,) = coco.read(root, ReadContext(source="c"))
    assert skipped.error.path.endswith("instances.json")


def _yolo(root, lines):
    make_image(root / "obj_train_data" / "a.jpg", 200, 100)
    (root / "obj.names").write_text("cat\ndog\n")
    (root / "obj_train_data" / "a.txt").write_text(lines)
    make_image(root / "obj_train_data" / "b.jpg", 20, 10)
    return root


def test_yolo_relative_centre_boxes_become_pixels(tmp_path):
    root = _yolo(tmp_path / "y", "1 0.5 0.5 0.5 0.2\n")
    assert detect_format(root)[0] == "yolo"
    a, b = sorted(yolo.read(root, ReadContext(source="y")), key=lambda r: r.filepath)
    assert a.boxes[0].label == "dog" and a.boxes[0].box == pytest.approx((50, 40, 150, 60))
    assert b.boxes is None and "unlabeled" in b.tags


@pytest.mark.parametrize("line,field", [("0 0.5 0.5 0.1\n", "line 1"), ("0 a 0.5 0.1 0.1\n", "line 1"),
                                        ("5 0.5 0.5 0.1 0.1\n", "line 1: class")])
def test_yolo_bad_lines_name_file_and_line(tmp_path, line, field):
    root = _yolo(tmp_path / "y", "0 0.5 0.5 0.2 0.2\n" + line.replace("line 1", ""))
    a = min(yolo.read(root, ReadContext(source="y")), key=lambda r: r.filepath)
    assert len(a.boxes) == 1 and a.errors[0].field == field.replace("1", "2")
    assert a.errors[0].path.endswith("a.txt") and a.errors[0].fix


def test_ultralytics_yaml_splits(tmp_path):
    root = tmp_path / "u"
    make_image(root / "images" / "train" / "a.jpg", 40, 40)
    make_image(root / "images" / "val" / "b.jpg", 40, 40)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "labels" / "val" / "b.txt").write_text("")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: cat}\n")
    records = {r.filepath.rsplit("/", 1)[1]: r for r in yolo.read(root, ReadContext(source="u"))}
    assert records["a.jpg"].tags == ["train"] and records["a.jpg"].boxes[0].box == (10, 10, 30, 30)
    assert records["b.jpg"].tags == ["val"] and records["b.jpg"].boxes == []


def _boxes(dataset):
    out = []
    for sample in dataset.select_fields("ground_truth"):
        w, h = sample.metadata.width, sample.metadata.height
        name = sample.filepath.rsplit("/", 1)[1]
        for d in sample.ground_truth.detections:
            x, y, bw, bh = d.bounding_box
            out.append((name, d.label, x * w, y * h, (x + bw) * w, (y + bh) * h))
    return sorted(out)


@pytest.mark.realdata
@pytest.mark.parametrize("fmt_dir", ["yolo_format", "coco_format_v1"])
def test_same_ground_truth_in_three_formats_agrees(fmt_dir, dataset_name):
    base = shared_dataset("voc2012-sample") / "data" / "database"
    voc_name, other_name = f"{dataset_name}-voc", f"{dataset_name}-other"
    try:
        import_folder(base / "gts" / "pascalvoc_format", dataset_name=voc_name, image_dirs=[base / "images"],
                      progress=False)
        report = import_folder(base / "gts" / fmt_dir, dataset_name=other_name, image_dirs=[base / "images"],
                               progress=False)
        assert not report.errors
        reference, other = _boxes(fo.load_dataset(voc_name)), _boxes(fo.load_dataset(other_name))
        assert len(reference) == len(other)
        for ref, box in zip(reference, other):
            assert ref[:2] == box[:2] and box[2:] == pytest.approx(ref[2:], abs=1.0)
    finally:
        for name in (voc_name, other_name):
            if fo.dataset_exists(name):
                fo.delete_dataset(name)
