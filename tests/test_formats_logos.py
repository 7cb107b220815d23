"""The logo-dataset readers on tiny folders of each dataset's exact shape, plus read-only checks on the real
FlickrLogos-27 and BelgaLogos files. Expected boxes are computed by hand from each format's convention."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_dataset
from factories import make_image

from curate import schema
from curate.errors import ImageNotFoundError, InvalidValueError, MalformedXMLError, MissingFieldError
from curate.formats import belgalogos, flickrlogos27, flickrlogos32, logos_in_the_wild, openlogo, voc
from curate.formats.records import ReadContext, SampleRecord, SkippedFile

W, H = 40, 30  # every generated image
LOGO_READERS = (flickrlogos27, flickrlogos32, belgalogos, logos_in_the_wild, openlogo)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read(reader, root: Path, **ctx_args) -> tuple[list, ReadContext]:
    ctx = ReadContext(source="src", **ctx_args)
    return list(reader.read(root, ctx)), ctx


def by_name(records) -> dict[str, SampleRecord]:
    return {Path(r.filepath).name: r for r in records if isinstance(r, SampleRecord)}


def only_error(record: SampleRecord):
    assert len(record.errors) == 1, record.errors
    return record.errors[0]


# ---- layouts --------------------------------------------------------------------------------------

FL27_PREFIX = "flickr_logos_27_dataset"


def make_flickrlogos27(root: Path, training: str, query: str = "q1.jpg\tAdidas\n",
                       images=("a.jpg", "b.jpg", "q1.jpg", "extra.jpg")) -> Path:
    folder = root / FL27_PREFIX
    write(folder / f"{FL27_PREFIX}_training_set_annotation.txt", training)
    write(folder / f"{FL27_PREFIX}_query_set_annotation.txt", query)
    write(folder / f"{FL27_PREFIX}_distractor_set_urls.txt", "http://x/1_a.jpg\nhttp://x/2_b.jpg\n")
    for name in images:
        make_image(folder / f"{FL27_PREFIX}_images" / name, W, H)
    return root


FL27_TRAINING = ("a.jpg Adidas 1 0 5 20 15 \n"
                 "a.jpg Adidas 2 0 5 20 15 \n"
                 "a.jpg Adidas 3 0 5 20 15 \n"
                 "a.jpg Nike 1 10 10 40 30 \n"
                 "b.jpg Ford 6 1 2 3 4 \n")


def make_flickrlogos32(root: Path) -> Path:
    classes = root / "FlickrLogos-v2" / "classes"
    make_image(classes / "jpg" / "adidas" / "100.jpg", W, H)
    make_image(classes / "jpg" / "adidas" / "101.jpg", W, H)
    make_image(classes / "jpg" / "no-logo" / "900.jpg", W, H)
    write(classes / "masks" / "adidas" / "100.jpg.bboxes.txt", "x y width height\n2 3 10 5\n20 0 20 30\n")
    write(classes / "masks" / "adidas" / "101.bboxes.txt", "x y width height\n0 0 5 5\n")
    write(root / "FlickrLogos-v2" / "trainset.txt", "adidas,100.jpg\n")
    write(root / "FlickrLogos-v2" / "valset.txt", "no-logo,900.jpg\n")
    write(root / "FlickrLogos-v2" / "testset.txt", "adidas,101.jpg\n")
    write(root / "FlickrLogos-v2" / "trainvalset.txt", "adidas,100.jpg\nno-logo,900.jpg\n")
    return root / "FlickrLogos-v2"


BELGA_LINES = ("Adidas_0000\tAdidas\t001.jpg\tlogo\t1\t0\t5\t20\t15\n"
               "Nike_0001\tNike\t001.jpg\tlogo\t0\t10\t10\t40\t30\n"
               "Nike_0002\tNike\t002.jpg\tlogo\t1\t1\t2\t3\t4\n")


def make_belgalogos(root: Path, text: str = BELGA_LINES, images=("001.jpg",)) -> Path:
    write(root / "qset3_internal_and_local.gt", text)
    for name in images:
        make_image(root / "images" / name, W, H)
    return root


def litw_xml(filename: str, objects) -> str:
    """A raw Logos-in-the-Wild XML; ``objects`` hold (name, (xmin, ymin, xmax, ymax)) as written."""
    body = "".join(f"<object><name>{name}</name><truncated>0</truncated><difficult>0</difficult><bndbox>"
                   f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                   for name, (x0, y0, x1, y1) in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{W}</width><height>{H}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


def make_logos_in_the_wild(root: Path, urls: str = "000001\thttp://host/p/one.jpg\n"
                                                   "000002\thttp://host/p/two.jpg\n") -> Path:
    brand = root / "LogosInTheWild-v2" / "data" / "mercedes"
    write(brand / "img000001.xml", litw_xml("img000001.jpg", [
        ("mercedes-schriftzug-teilsichtbar", (1, 1, 10, 10)), ("mercedes", (11, 5, 40, 30))]))
    write(brand / "img000002.xml", litw_xml("img000002.jpg", [("Mercedes-Schrift", (2, 2, 4, 4))]))
    write(brand / "urls.txt", urls)
    make_image(brand / "img000001.jpg", W, H)
    make_image(brand / "img000099.jpg", W, H)  # downloaded, but no XML
    return root


def make_openlogo(root: Path) -> Path:
    base = root / "openlogo"
    for stem in ("logo1", "logo2", "logo3"):
        make_image(base / "JPEGImages" / f"{stem}.jpg", W, H)
        write(base / "Annotations" / f"{stem}.xml", litw_xml(f"{stem}.jpg", [("adidas", (1, 1, 10, 10))]))
    make_image(base / "JPEGImages" / "bare.jpg", W, H)
    lists = base / "ImageSets" / "Main" / "train_test"
    write(lists / "train_all.txt", "logo1\nlogo2\n")
    write(lists / "test_all.txt", "logo3\n")
    write(lists / "readme.txt", "logo1\n")
    return root


MAKERS = {
    flickrlogos27: lambda root: make_flickrlogos27(root, FL27_TRAINING),
    flickrlogos32: make_flickrlogos32,
    belgalogos: make_belgalogos,
    logos_in_the_wild: make_logos_in_the_wild,
    openlogo: make_openlogo,
}


# ---- detection ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LOGO_READERS, ids=lambda m: m.NAME)
@pytest.mark.parametrize("reader", LOGO_READERS, ids=lambda m: m.NAME)
def test_detect_recognises_only_its_own_layout(tmp_path, reader, layout):
    MAKERS[layout](tmp_path)
    reason = reader.detect(tmp_path)
    assert bool(reason) == (reader is layout), reason


def test_openlogo_layout_is_also_plain_voc_so_openlogo_must_be_tried_first(tmp_path):
    make_openlogo(tmp_path)
    assert voc.detect(tmp_path) and openlogo.detect(tmp_path)


def test_plain_voc_is_not_openlogo(tmp_path):
    make_image(tmp_path / "JPEGImages" / "a.jpg", W, H)
    write(tmp_path / "Annotations" / "a.xml", litw_xml("a.jpg", []))
    assert voc.detect(tmp_path) and not openlogo.detect(tmp_path)


def test_belgalogos_gt_with_other_field_count_is_not_detected(tmp_path):
    write(tmp_path / "x.gt", "a\tb\tc\n")
    assert belgalogos.detect(tmp_path) is None


# ---- FlickrLogos-27 -------------------------------------------------------------------------------

def test_flickrlogos27_collapses_subset_duplicates_and_keeps_subsets(tmp_path):
    records, ctx = read(flickrlogos27, make_flickrlogos27(tmp_path, FL27_TRAINING))
    a = by_name(records)["a.jpg"]
    assert [(b.label, b.box, b.attributes["subsets"]) for b in a.boxes] == [
        ("Adidas", (0.0, 5.0, 20.0, 15.0), [1, 2, 3]), ("Nike", (10.0, 10.0, 40.0, 30.0), [1])]
    assert a.tags == ["train"] and not a.errors
    assert ctx.stats["annotation_lines"] == 5
    assert ctx.stats["duplicate_lines_collapsed"] == 2 and ctx.stats["unique_boxes"] == 3


def test_flickrlogos27_query_images_have_a_label_and_no_boxes(tmp_path):
    records, _ = read(flickrlogos27, make_flickrlogos27(tmp_path, FL27_TRAINING))
    query = by_name(records)["q1.jpg"]
    assert query.boxes is None and query.image_label == "Adidas" and query.tags == [schema.TAG_QUERY]
    assert query.annotation_path.endswith("_query_set_annotation.txt")


def test_flickrlogos27_unannotated_image_is_unlabeled_and_distractors_are_counted(tmp_path):
    records, ctx = read(flickrlogos27, make_flickrlogos27(tmp_path, FL27_TRAINING))
    extra = by_name(records)["extra.jpg"]
    assert extra.boxes is None and extra.tags == [schema.TAG_UNLABELED]
    assert ctx.stats["distractor_urls_not_downloaded"] == 2
    assert ctx.notes["distractor_url_lists"][0].endswith("_distractor_set_urls.txt")


def test_flickrlogos27_digest_changes_with_the_image_lines_only(tmp_path):
    first = by_name(read(flickrlogos27, make_flickrlogos27(tmp_path / "1", FL27_TRAINING))[0])
    changed = FL27_TRAINING.replace("b.jpg Ford 6 1 2 3 4", "b.jpg Ford 6 1 2 3 5")
    second = by_name(read(flickrlogos27, make_flickrlogos27(tmp_path / "2", changed))[0])
    assert first["a.jpg"].annotation_digest == second["a.jpg"].annotation_digest
    assert first["b.jpg"].annotation_digest != second["b.jpg"].annotation_digest


@pytest.mark.parametrize("line, error_type, field", [
    ("b.jpg Ford 6 1 2 x 4", InvalidValueError, "line 2: x2"),
    ("b.jpg Ford 6 1 2 3", MissingFieldError, "line 2: y2"),
    ("b.jpg Ford six 1 2 3 4", InvalidValueError, "line 2: subset"),
    ("b.jpg Ford 6 1 2 3 4 9", InvalidValueError, "line 2"),
])
def test_flickrlogos27_bad_line_is_an_error_on_its_image_and_other_boxes_survive(tmp_path, line,
                                                                                 error_type, field):
    root = make_flickrlogos27(tmp_path, f"b.jpg Ford 1 1 2 3 4\n{line}\n")
    records, ctx = read(flickrlogos27, root)
    b = by_name(records)["b.jpg"]
    error = only_error(b)
    assert type(error) is error_type and error.field == field
    assert error.path.endswith("_training_set_annotation.txt") and error.fix
    assert [box.box for box in b.boxes] == [(1.0, 2.0, 3.0, 4.0)]
    assert ctx.stats["annotation_lines"] == 2 and ctx.stats["invalid_lines"] == 1


def test_flickrlogos27_line_without_image_name_is_skipped(tmp_path):
    records, ctx = read(flickrlogos27, make_flickrlogos27(tmp_path, "Ford 6 1 2 3 4\n"))
    skipped = [r for r in records if isinstance(r, SkippedFile)]
    assert len(skipped) == 1 and skipped[0].error.field == "line 1: image"
    assert ctx.stats["invalid_lines"] == 1


def test_flickrlogos27_query_line_without_class_is_an_error(tmp_path):
    records, _ = read(flickrlogos27, make_flickrlogos27(tmp_path, FL27_TRAINING, query="q1.jpg\n"))
    error = only_error(by_name(records)["q1.jpg"])
    assert isinstance(error, MissingFieldError) and error.field == "line 1: class"


def test_flickrlogos27_missing_image(tmp_path):
    records, _ = read(flickrlogos27, make_flickrlogos27(tmp_path, "gone.jpg Ford 1 1 2 3 4\n"))
    gone = by_name(records)["gone.jpg"]
    error = only_error(gone)
    assert isinstance(error, ImageNotFoundError) and error.field == "line 1: image"
    assert [box.label for box in gone.boxes] == ["Ford"]


# ---- FlickrLogos-32 -------------------------------------------------------------------------------

def test_flickrlogos32_boxes_from_xywh_and_split_tags(tmp_path):
    records, _ = read(flickrlogos32, make_flickrlogos32(tmp_path))
    images = by_name(records)
    assert [(b.label, b.box) for b in images["100.jpg"].boxes] == [
        ("adidas", (2.0, 3.0, 12.0, 8.0)), ("adidas", (20.0, 0.0, 40.0, 30.0))]
    assert images["100.jpg"].tags == ["train"]
    assert [b.box for b in images["101.jpg"].boxes] == [(0.0, 0.0, 5.0, 5.0)]  # <stem>.bboxes.txt
    assert images["101.jpg"].tags == ["test"]


def test_flickrlogos32_no_logo_images_are_negatives(tmp_path):
    records, _ = read(flickrlogos32, make_flickrlogos32(tmp_path))
    negative = by_name(records)["900.jpg"]
    assert negative.boxes == [] and negative.tags == [schema.TAG_NEGATIVE, "val"]
    assert negative.annotation_path and not negative.errors


@pytest.mark.parametrize("line, error_type, field", [
    ("2 3 ten 5", InvalidValueError, "line 3: width"),
    ("2 3 10", MissingFieldError, "line 3: height"),
])
def test_flickrlogos32_bad_box_line(tmp_path, line, error_type, field):
    root = make_flickrlogos32(tmp_path)
    box_file = root / "classes" / "masks" / "adidas" / "100.jpg.bboxes.txt"
    write(box_file, f"x y width height\n0 0 1 1\n{line}\n")
    record = by_name(read(flickrlogos32, root)[0])["100.jpg"]
    error = only_error(record)
    assert type(error) is error_type and error.field == field and error.path.endswith("100.jpg.bboxes.txt")
    assert [b.box for b in record.boxes] == [(0.0, 0.0, 1.0, 1.0)]


def test_flickrlogos32_logo_image_without_box_file_is_never_a_negative(tmp_path):
    root = make_flickrlogos32(tmp_path)
    (root / "classes" / "masks" / "adidas" / "101.bboxes.txt").unlink()
    record = by_name(read(flickrlogos32, root)[0])["101.jpg"]
    assert record.boxes is None and record.image_label == "adidas"
    assert isinstance(only_error(record), MissingFieldError)


def test_flickrlogos32_box_file_without_image(tmp_path):
    root = make_flickrlogos32(tmp_path)
    (root / "classes" / "jpg" / "adidas" / "100.jpg").unlink()
    record = by_name(read(flickrlogos32, root)[0])["100.jpg"]
    assert isinstance(only_error(record), ImageNotFoundError) and len(record.boxes) == 2


def test_flickrlogos32_bad_split_line_is_skipped(tmp_path):
    root = make_flickrlogos32(tmp_path)
    write(root / "testset.txt", "adidas,101.jpg\nadidas 102.jpg\n")
    skipped = [r for r in read(flickrlogos32, root)[0] if isinstance(r, SkippedFile)]
    assert len(skipped) == 1 and skipped[0].error.field == "line 2: filename"


# ---- BelgaLogos -----------------------------------------------------------------------------------

def test_belgalogos_boxes_and_attributes(tmp_path):
    records, ctx = read(belgalogos, make_belgalogos(tmp_path))
    image = by_name(records)["001.jpg"]
    assert [(b.label, b.box, b.attributes) for b in image.boxes] == [
        ("Adidas", (0.0, 5.0, 20.0, 15.0), {"ok": True, "logo_type": "logo", "annotation_id": "Adidas_0000"}),
        ("Nike", (10.0, 10.0, 40.0, 30.0), {"ok": False, "logo_type": "logo", "annotation_id": "Nike_0001"})]
    assert image.filepath == str((tmp_path / "images" / "001.jpg").resolve()) and not image.errors
    assert ctx.stats["annotation_lines"] == 3


def test_belgalogos_missing_images_are_annotation_only_and_reported(tmp_path):
    records, ctx = read(belgalogos, make_belgalogos(tmp_path))
    missing = by_name(records)["002.jpg"]
    assert isinstance(only_error(missing), ImageNotFoundError) and len(missing.boxes) == 1
    assert ctx.stats["images_missing"] == 1
    assert ctx.notes["images_looked_for_in"] == [str(tmp_path), str(tmp_path / "images")]


def test_belgalogos_images_found_in_image_dirs(tmp_path):
    root = make_belgalogos(tmp_path / "gt", images=())
    make_image(tmp_path / "photos" / "002.jpg", W, H)
    records, ctx = read(belgalogos, root, image_dirs=(tmp_path / "photos",))
    assert not by_name(records)["002.jpg"].errors
    assert ctx.notes["images_looked_for_in"][0] == str(tmp_path / "photos")


@pytest.mark.parametrize("bad, error_type, field", [
    ("Nike_0009\tNike\t001.jpg\tlogo\t1\t1\tx\t3\t4", InvalidValueError, "line 4: y1"),
    ("Nike_0009\tNike\t001.jpg\tlogo\t1\t1\t2\t3", MissingFieldError, "line 4: y2"),
    ("Nike_0009\tNike\t001.jpg\tlogo\tyes\t1\t2\t3\t4", InvalidValueError, "line 4: ok"),
])
def test_belgalogos_bad_line_is_an_error_on_its_image(tmp_path, bad, error_type, field):
    records, ctx = read(belgalogos, make_belgalogos(tmp_path, BELGA_LINES + bad + "\n"))
    image = by_name(records)["001.jpg"]
    error = only_error(image)
    assert type(error) is error_type and error.field == field and error.path.endswith(".gt")
    assert len(image.boxes) == 2 and ctx.stats["invalid_lines"] == 1


def test_belgalogos_line_without_image_is_skipped(tmp_path):
    records, _ = read(belgalogos, make_belgalogos(tmp_path, BELGA_LINES + "Nike_0009\tNike\n"))
    skipped = [r for r in records if isinstance(r, SkippedFile)]
    assert len(skipped) == 1 and skipped[0].error.field == "line 4: image"


def test_belgalogos_space_separated_line_is_read(tmp_path):
    spaced = "P_1 Peugeot 001.jpg logo 1 1 2 3 4\n"
    records, ctx = read(belgalogos, make_belgalogos(tmp_path, BELGA_LINES + spaced))
    assert [b.label for b in by_name(records)["001.jpg"].boxes][-1] == "Peugeot"
    assert ctx.stats["space_separated_lines"] == 1


# ---- Logos in the Wild ----------------------------------------------------------------------------

def test_logos_in_the_wild_suffixes_and_one_based_boxes(tmp_path):
    records, ctx = read(logos_in_the_wild, make_logos_in_the_wild(tmp_path))
    first = by_name(records)["img000001.jpg"]
    assert [(b.label, b.box, b.attributes["truncated"], b.attributes.get(schema.ORIGINAL_LABEL))
            for b in first.boxes] == [
        ("mercedes-text", (0.0, 0.0, 10.0, 10.0), True, "mercedes-schriftzug-teilsichtbar"),
        ("mercedes", (10.0, 4.0, 40.0, 30.0), False, None)]
    assert not first.errors
    assert ctx.stats["labels_renamed"] == 2 and ctx.stats["partly_visible_boxes"] == 1


@pytest.mark.parametrize("raw, expected", [
    ("adidas-teilsichtbar", ("adidas", True)), ("Adidas-Schrift", ("Adidas-text", False)),
    ("bmw-schriftzug", ("bmw-text", False)), ("nike-partial", ("nike", True)), ("puma", ("puma", False)),
])
def test_logos_in_the_wild_harmonise_label(raw, expected):
    assert logos_in_the_wild.harmonise_label(raw) == expected


def test_logos_in_the_wild_data_folder_itself_is_detected_and_owns_its_brand_folders(tmp_path):
    data = make_logos_in_the_wild(tmp_path) / "LogosInTheWild-v2" / "data"
    assert logos_in_the_wild.detect(data)
    assert logos_in_the_wild.owns_subfolders(data)
    assert not logos_in_the_wild.owns_subfolders(data.parent)
    assert not logos_in_the_wild.owns_subfolders(data / "mercedes")


def test_logos_in_the_wild_image_not_downloaded_is_listed_with_its_url(tmp_path):
    records, ctx = read(logos_in_the_wild, make_logos_in_the_wild(tmp_path))
    second = by_name(records)["img000002.jpg"]
    assert isinstance(only_error(second), ImageNotFoundError) and len(second.boxes) == 1
    assert ctx.notes["not_downloaded"] == [{"image": second.filepath, "url": "http://host/p/two.jpg"}]


def test_logos_in_the_wild_image_without_xml_is_unlabeled(tmp_path):
    records, _ = read(logos_in_the_wild, make_logos_in_the_wild(tmp_path))
    assert by_name(records)["img000099.jpg"].tags == [schema.TAG_UNLABELED]


@pytest.mark.parametrize("urls, expected", [
    ("img000002.jpg http://host/p/two.jpg\n", "http://host/p/two.jpg"),  # filename + URL
    ("http://host/x/img000002.jpg\n", "http://host/x/img000002.jpg"),  # bare URL, by its file name
    ("http://host/a.jpg\nhttp://host/b.jpg\n", "http://host/b.jpg"),  # bare URL, by line order
])
def test_logos_in_the_wild_urls_line_formats(tmp_path, urls, expected):
    _, ctx = read(logos_in_the_wild, make_logos_in_the_wild(tmp_path, urls=urls))
    assert ctx.notes["not_downloaded"][0]["url"] == expected


def test_logos_in_the_wild_bad_urls_line_is_skipped(tmp_path):
    root = make_logos_in_the_wild(tmp_path, urls="000001 http://h/1.jpg\nnot-a-url\n")
    records, _ = read(logos_in_the_wild, root)
    skipped = [r for r in records if isinstance(r, SkippedFile)]
    assert len(skipped) == 1 and skipped[0].error.field == "line 2: url"


def test_logos_in_the_wild_bad_coordinate_keeps_other_boxes(tmp_path):
    root = make_logos_in_the_wild(tmp_path)
    xml = root / "LogosInTheWild-v2" / "data" / "mercedes" / "img000001.xml"
    xml.write_text(xml.read_text().replace("<xmax>10</xmax>", "<xmax>ten</xmax>"))
    record = by_name(read(logos_in_the_wild, root)[0])["img000001.jpg"]
    error = only_error(record)
    assert isinstance(error, InvalidValueError) and error.field == "object[0]/bndbox/xmax"
    assert [b.label for b in record.boxes] == ["mercedes"]


def test_logos_in_the_wild_broken_xml_without_image_is_skipped(tmp_path):
    root = make_logos_in_the_wild(tmp_path)
    write(root / "LogosInTheWild-v2" / "data" / "mercedes" / "img000002.xml", "<annotation><object>")
    skipped = [r for r in read(logos_in_the_wild, root)[0] if isinstance(r, SkippedFile)]
    assert len(skipped) == 1 and isinstance(skipped[0].error, MalformedXMLError)


# ---- QMUL-OpenLogo --------------------------------------------------------------------------------

def test_openlogo_split_tags_from_train_test_lists(tmp_path):
    records, ctx = read(openlogo, make_openlogo(tmp_path))
    images = by_name(records)
    assert {name: r.tags for name, r in images.items()} == {
        "logo1.jpg": ["train"], "logo2.jpg": ["train"], "logo3.jpg": ["test"],
        "bare.jpg": [schema.TAG_UNLABELED]}
    assert {r.source_format for r in images.values()} == {"openlogo"}
    assert ctx.notes["split_lists_ignored"][0].endswith("readme.txt")


def test_openlogo_boxes_are_voc_one_based(tmp_path):
    records, _ = read(openlogo, make_openlogo(tmp_path))
    assert [b.box for b in by_name(records)["logo1.jpg"].boxes] == [(0.0, 0.0, 10.0, 10.0)]


def test_openlogo_missing_image(tmp_path):
    root = make_openlogo(tmp_path)
    (root / "openlogo" / "JPEGImages" / "logo3.jpg").unlink()
    record = by_name(read(openlogo, root)[0])["logo3.jpg"]
    assert isinstance(only_error(record), ImageNotFoundError) and record.tags == ["test"]


def test_openlogo_bad_coordinate(tmp_path):
    root = make_openlogo(tmp_path)
    xml = root / "openlogo" / "Annotations" / "logo2.xml"
    xml.write_text(xml.read_text().replace("<ymin>1</ymin>", "<ymin>1..</ymin>"))
    error = only_error(by_name(read(openlogo, root)[0])["logo2.jpg"])
    assert isinstance(error, InvalidValueError) and error.field == "object[0]/bndbox/ymin"


# ---- real files, read only (the import itself is in test_import_logos_realdata.py) -----------------

@pytest.mark.realdata
def test_real_flickrlogos27_and_belgalogos_are_detected():
    assert flickrlogos27.detect(shared_dataset("flickrlogos27"))
    assert belgalogos.detect(shared_dataset("belgalogos-gt"))
    for other in (flickrlogos32, logos_in_the_wild, openlogo):
        assert not other.detect(shared_dataset("flickrlogos27"))
        assert not other.detect(shared_dataset("belgalogos-gt"))


@pytest.mark.realdata
def test_real_flickrlogos27_every_training_line_accounted_for():
    records, ctx = read(flickrlogos27, shared_dataset("flickrlogos27"))
    stats = ctx.stats
    assert stats["annotation_lines"] == (stats["duplicate_lines_collapsed"] + stats["unique_boxes"]
                                         + stats.get("invalid_lines", 0))
    assert sum(len(r.boxes or ()) for r in records if isinstance(r, SampleRecord)) == stats["unique_boxes"]
