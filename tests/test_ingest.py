"""`curate import` into a real FiftyOne dataset (real MongoDB), on tiny hand-made folders."""

from __future__ import annotations

import fiftyone as fo
import pytest
from factories import box, make_image, make_labelimg_xml

from curate import schema
from curate.errors import ImportFailed
from curate.ingest import import_folder
from curate.synth import write_voc_folder


@pytest.fixture
def folder(tmp_path):
    """a.jpg (100x50) annotated; b.png unlabeled; c.xml whose image is missing."""
    root = tmp_path / "shop"
    make_image(root / "a.jpg", 100, 50)
    make_labelimg_xml(root / "a.xml", "a.jpg", (100, 50),
                      [box("cat", 10, 5, 60, 45, difficult=True, pose="Left")])
    make_image(root / "b.png", 40, 30)
    make_labelimg_xml(root / "c.xml", "c.jpg", (200, 100), [box("dog", 20, 10, 120, 60)])
    return root


def _sample(dataset, name):
    return dataset.match(fo.ViewField("filepath").ends_with(name)).first()


def test_import_writes_boxes_sizes_attributes_and_source(folder, dataset_name):
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    ds = fo.load_dataset(dataset_name)
    assert (len(ds), report.added, report.format) == (3, 3, "labelimg")
    a = _sample(ds, "a.jpg")
    (det,) = a.ground_truth.detections
    assert isinstance(det, fo.Detection) and det.label == "cat"
    assert det.bounding_box == pytest.approx([0.1, 0.1, 0.5, 0.8])
    assert (det.difficult, det.truncated, det.pose) == (True, False, "Left")
    assert (a.metadata.width, a.metadata.height, a.metadata.mime_type) == (100, 50, "image/jpeg")
    assert (a[schema.DECLARED_WIDTH], a[schema.DECLARED_HEIGHT]) == (100, 50)
    assert a[schema.SOURCE] == "shop" and a[schema.ANNOTATION_PATH] == str(folder / "a.xml")
    assert a.tags == []


def test_unlabeled_image_and_missing_image_are_kept_and_tagged(folder, dataset_name):
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    ds = fo.load_dataset(dataset_name)
    b, c = _sample(ds, "b.png"), _sample(ds, "c.jpg")
    assert b.ground_truth is None and b.tags == [schema.TAG_UNLABELED]
    assert c.tags == [schema.TAG_MISSING_IMAGE] and c.metadata is None
    # annotation-only sample: boxes made relative to the declared 200x100 size
    assert c.ground_truth.detections[0].bounding_box == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert (report.unlabeled_images, report.missing_images, report.boxes) == (1, 1, 2)
    assert [e["kind"] for e in report.errors] == ["ImageNotFoundError"]
    assert report.errors[0]["path"] == str(folder / "c.xml") and report.errors[0]["fix"]


def test_reimport_adds_nothing(folder, dataset_name):
    import_folder(folder, dataset_name=dataset_name, progress=False)
    again = import_folder(folder, dataset_name=dataset_name, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    assert len(fo.load_dataset(dataset_name)) == 3


def test_changed_xml_updates_its_sample_and_keeps_user_tags(folder, dataset_name):
    import_folder(folder, dataset_name=dataset_name, progress=False)
    ds = fo.load_dataset(dataset_name)
    a = _sample(ds, "a.jpg")
    a.tags.append("reviewed")
    a.save()
    make_labelimg_xml(folder / "a.xml", "a.jpg", (100, 50), [box("lion", 0, 0, 50, 25),
                                                             box("cat", 50, 25, 100, 50)])
    again = import_folder(folder, dataset_name=dataset_name, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 1, 2)
    ds.reload()
    a = _sample(ds, "a.jpg")
    assert [d.label for d in a.ground_truth.detections] == ["lion", "cat"]
    assert a.ground_truth.detections[1].bounding_box == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert a.tags == ["reviewed"] and len(ds) == 3


def test_bad_xml_is_reported_and_its_image_kept(folder, dataset_name):
    (folder / "a.xml").write_text("<annotation><object><name>cat</name>")
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    a = _sample(fo.load_dataset(dataset_name), "a.jpg")
    assert schema.TAG_IMPORT_ERROR in a.tags and a.ground_truth is None
    assert "MalformedXMLError" in report.error_kinds()
    assert a[schema.IMPORT_ERRORS][0].startswith("MalformedXMLError")


def test_box_level_error_keeps_the_other_boxes(folder, dataset_name):
    xml = (folder / "a.xml").read_text().replace("<xmin>10</xmin>", "<xmin>ten</xmin>")
    (folder / "a.xml").write_text(xml.replace("</annotation>", """<object><name>ok</name>
        <bndbox><xmin>0</xmin><ymin>0</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>
        </annotation>"""))
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    a = _sample(fo.load_dataset(dataset_name), "a.jpg")
    assert [d.label for d in a.ground_truth.detections] == ["ok"]
    assert schema.TAG_IMPORT_ERROR in a.tags
    error = next(e for e in report.errors if e["kind"] == "InvalidValueError")
    assert error["field"] == "object[0]/bndbox/xmin" and "'ten'" in error["detail"]


def test_on_error_fail_stops_at_first_error_naming_the_file(folder, dataset_name):
    with pytest.raises(ImportFailed, match="c.xml"):
        import_folder(folder, dataset_name=dataset_name, on_error="fail", progress=False)


def test_unreadable_image_is_tagged(folder, dataset_name):
    (folder / "a.jpg").write_text("this is not a jpeg")
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    a = _sample(fo.load_dataset(dataset_name), "a.jpg")
    assert schema.TAG_UNREADABLE_IMAGE in a.tags and a.metadata is None
    assert report.unreadable_images == 1 and "UnreadableImageError" in report.error_kinds()


def test_declared_size_is_kept_beside_the_true_size(tmp_path, dataset_name):
    make_image(tmp_path / "d" / "x.jpg", 100, 50)
    make_labelimg_xml(tmp_path / "d" / "x.xml", "x.jpg", (200, 100), [box("cat", 0, 0, 50, 25)])
    import_folder(tmp_path / "d", dataset_name=dataset_name, progress=False)
    x = fo.load_dataset(dataset_name).first()
    assert (x.metadata.width, x[schema.DECLARED_WIDTH]) == (100, 200)
    assert x.ground_truth.detections[0].bounding_box == pytest.approx([0, 0, 0.5, 0.5])


def test_two_xml_for_one_image_keep_the_first_and_report_the_second(folder, dataset_name):
    make_labelimg_xml(folder / "zz_copy.xml", "a.jpg", (100, 50), [box("cat", 1, 1, 5, 5)])
    report = import_folder(folder, dataset_name=dataset_name, progress=False)
    assert len(fo.load_dataset(dataset_name)) == 3
    assert report.error_kinds().get("DuplicateAnnotationError") == 1


def test_report_is_saved_on_the_dataset_each_run(folder, dataset_name):
    import_folder(folder, dataset_name=dataset_name, progress=False)
    import_folder(folder, dataset_name=dataset_name, progress=False)
    reports = fo.load_dataset(dataset_name).info[schema.INFO_IMPORT_REPORTS]
    assert [r["added"] for r in reports] == [3, 0] and reports[0]["completed"]


def test_voc_layout_splits_and_one_based_boxes(tmp_path, dataset_name):
    root = write_voc_folder(tmp_path / "voc", 10, width=64, height=48, min_boxes=1, max_boxes=2)
    report = import_folder(root, dataset_name=dataset_name, progress=False)
    ds = fo.load_dataset(dataset_name)
    assert report.format == "voc" and report.pixel_convention == "voc-1-based"
    assert ds.count_sample_tags() == {"train": 8, "val": 2}
    xml = (root / "Annotations" / "000000.xml").read_text()
    xmin = int(xml.split("<xmin>")[1].split("<")[0])
    first = ds.match(fo.ViewField("filepath").ends_with("000000.jpg")).first()
    assert first.ground_truth.detections[0].bounding_box[0] == pytest.approx((xmin - 1) / 64)


def test_fields_are_declared_for_fiftyone(folder, dataset_name):
    import_folder(folder, dataset_name=dataset_name, progress=False)
    ds = fo.load_dataset(dataset_name)
    flat = ds.get_field_schema(flat=True)
    for field in (schema.SOURCE, schema.FINGERPRINT, f"{schema.GROUND_TRUTH}.detections.difficult",
                  f"{schema.GROUND_TRUTH}.detections.pose", "metadata.width"):
        assert field in flat
    assert ds.media_type == "image"
    assert ds.count(f"{schema.GROUND_TRUTH}.detections") == 2
    assert ds.bounds("metadata.width") == (40, 100)
