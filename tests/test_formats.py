"""Format detection, the VOC and LabelImg readers on tiny synthetic folders, and image headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from curate.errors import ImageNotFoundError, MalformedXMLError, UnreadableImageError
from curate.formats import UnknownFormatError, detect_format, get_reader
from curate.formats.records import ReadContext, SampleRecord, SkippedFile
from curate.imageinfo import read_header

SIZE = (32, 24)  # width, height of every generated image


def make_image(path: Path, size=SIZE, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, fmt)
    return path


def annotation(filename: str, boxes=(("cat", (1, 1, 10, 10)),)) -> str:
    """A VOC/LabelImg XML; ``boxes`` hold the source file's own (xmin, ymin, xmax, ymax)."""
    objects = "".join(
        f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for label, (x0, y0, x1, y1) in boxes)
    return (f"<annotation><folder>f</folder><filename>{filename}</filename><size><width>{SIZE[0]}</width>"
            f"<height>{SIZE[1]}</height><depth>3</depth></size>{objects}</annotation>")


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_voc(root: Path, annotated=("a", "b", "c", "d"), unannotated=(), splits=None) -> Path:
    for stem in annotated:
        make_image(root / "JPEGImages" / f"{stem}.jpg")
        write_text(root / "Annotations" / f"{stem}.xml", annotation(f"{stem}.jpg"))
    for stem in unannotated:
        make_image(root / "JPEGImages" / f"{stem}.jpg")
    splits = splits or {"train": ["a"], "val": ["b"], "trainval": ["a", "b", "d"], "test": ["c"]}
    for split, stems in splits.items():
        write_text(root / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{s}\n" for s in stems))
    return root


def read_all(fmt: str, path: Path) -> list:
    return list(get_reader(fmt).read(path, ReadContext(source="src")))


def samples_by_name(records) -> dict[str, SampleRecord]:
    return {Path(r.filepath).name: r for r in records if isinstance(r, SampleRecord)}


# ---- detection ---------------------------------------------------------------------------------------

def test_detects_voc_layout_at_the_root(tmp_path):
    name, why = detect_format(make_voc(tmp_path))
    assert name == "voc"
    assert str(tmp_path) in why


def test_detects_voc_layout_two_levels_down(tmp_path):
    root = make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    name, why = detect_format(tmp_path)
    assert name == "voc"
    assert str(root) in why


def test_reads_voc_layout_two_levels_down(tmp_path):
    make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    assert sorted(samples_by_name(read_all("voc", tmp_path))) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_detects_labelimg_xml_beside_images(tmp_path):
    make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "x.xml", annotation("x.jpg"))
    assert detect_format(tmp_path)[0] == "labelimg"


def test_detects_labelimg_with_sibling_images_and_annotations_folders(tmp_path):
    make_image(tmp_path / "images" / "photo1.jpg")
    write_text(tmp_path / "annotations" / "label_1.xml", annotation("photo1.jpg"))
    assert detect_format(tmp_path)[0] == "labelimg"


def test_folder_without_annotations_is_unknown_format(tmp_path):
    make_image(tmp_path / "only.jpg")
    write_text(tmp_path / "notes.xml", "<notes>not an annotation</notes>")
    with pytest.raises(UnknownFormatError) as info:
        detect_format(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "fix:" in message


def test_unknown_format_name_lists_choices():
    with pytest.raises(UnknownFormatError, match="auto, openlogo, voc, .*labelimg"):
        get_reader("pascal")


# ---- VOC reader --------------------------------------------------------------------------------------

def test_voc_split_tags(tmp_path):
    samples = samples_by_name(read_all("voc", make_voc(tmp_path)))
    assert {name: s.tags for name, s in samples.items()} == {
        "a.jpg": ["train"], "b.jpg": ["val"], "c.jpg": ["test"], "d.jpg": ["trainval"]}


def test_voc_split_file_lines_with_flags_are_read(tmp_path):
    # ImageSets/Main/<class>_train.txt style "stem  1" lines: only the first word is the stem.
    make_voc(tmp_path, annotated=("a",), splits={"train": ["a  1"]})
    assert samples_by_name(read_all("voc", tmp_path))["a.jpg"].tags == ["train"]


def test_voc_boxes_are_converted_from_one_based_indices(tmp_path):
    sample = samples_by_name(read_all("voc", make_voc(tmp_path, annotated=("a",))))["a.jpg"]
    assert [(b.label, b.box) for b in sample.boxes] == [("cat", (0.0, 0.0, 10.0, 10.0))]
    assert sample.declared_size == (32, 24, 3)
    assert sample.errors == []


def test_voc_image_without_xml_is_unlabeled(tmp_path):
    make_voc(tmp_path, annotated=("a",), unannotated=("u",), splits={"val": ["u"]})
    records = read_all("voc", tmp_path)
    unlabeled = samples_by_name(records)["u.jpg"]
    assert unlabeled.boxes is None
    assert unlabeled.tags == ["unlabeled", "val"]
    assert unlabeled.annotation_path is None
    assert len(records) == 2


def test_voc_xml_whose_image_is_missing_reports_image_not_found(tmp_path):
    make_voc(tmp_path, annotated=("a",))
    xml = write_text(tmp_path / "Annotations" / "gone.xml", annotation("gone.jpg"))
    record = samples_by_name(read_all("voc", tmp_path))["gone.jpg"]
    assert [type(e) for e in record.errors] == [ImageNotFoundError]
    assert record.errors[0].path == str(xml)
    assert record.errors[0].field == "filename"
    assert len(record.boxes) == 1


def test_voc_malformed_xml_with_image_yields_record_with_error(tmp_path):
    make_voc(tmp_path, annotated=("a",))
    make_image(tmp_path / "JPEGImages" / "bad.jpg")
    write_text(tmp_path / "Annotations" / "bad.xml", "<annotation><object>")
    records = read_all("voc", tmp_path)
    bad = samples_by_name(records)["bad.jpg"]
    assert [type(e) for e in bad.errors] == [MalformedXMLError]
    assert bad.errors[0].path == str(tmp_path / "Annotations" / "bad.xml")
    assert len(records) == 2  # the image is not yielded a second time as unlabeled


def test_voc_malformed_xml_without_image_is_skipped(tmp_path):
    make_voc(tmp_path, annotated=("a",))
    xml = write_text(tmp_path / "Annotations" / "orphan.xml", "not xml at all")
    skipped = [r for r in read_all("voc", tmp_path) if isinstance(r, SkippedFile)]
    assert [(s.path, type(s.error)) for s in skipped] == [(str(xml), MalformedXMLError)]


# ---- LabelImg reader ---------------------------------------------------------------------------------

def test_labelimg_boxes_are_zero_based_edges(tmp_path):
    make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "x.xml", annotation("x.jpg", boxes=[("dog", (0, 0, 10, 10))]))
    sample = samples_by_name(read_all("labelimg", tmp_path))["x.jpg"]
    assert [(b.label, b.box) for b in sample.boxes] == [("dog", (0.0, 0.0, 10.0, 10.0))]


def test_labelimg_image_resolved_by_filename_across_sibling_folders(tmp_path):
    image = make_image(tmp_path / "images" / "photo1.jpg")
    xml = write_text(tmp_path / "annotations" / "label_1.xml", annotation("photo1.jpg"))
    records = read_all("labelimg", tmp_path)
    assert len(records) == 1
    assert records[0].filepath == str(image.resolve())
    assert records[0].annotation_path == str(xml.resolve())
    assert records[0].errors == []


def test_labelimg_windows_path_in_filename_resolves_beside(tmp_path):
    image = make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "ann_001.xml", annotation(r"C:\data\x.jpg"))
    records = read_all("labelimg", tmp_path)
    assert [(r.filepath, r.errors) for r in records] == [(str(image.resolve()), [])]


def test_labelimg_image_without_xml_is_unlabeled(tmp_path):
    make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "x.xml", annotation("x.jpg"))
    make_image(tmp_path / "y.png", fmt="PNG")
    unlabeled = samples_by_name(read_all("labelimg", tmp_path))["y.png"]
    assert (unlabeled.boxes, unlabeled.tags) == (None, ["unlabeled"])


def test_labelimg_xml_whose_image_is_missing_reports_image_not_found(tmp_path):
    xml = write_text(tmp_path / "x.xml", annotation("x.jpg"))
    (record,) = read_all("labelimg", tmp_path)
    assert [type(e) for e in record.errors] == [ImageNotFoundError]
    assert record.errors[0].path == str(xml)
    assert record.filepath == str((tmp_path / "x.jpg").resolve())


def test_labelimg_malformed_xml_with_image_yields_record_with_error(tmp_path):
    image = make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "x.xml", "<annotation><object>")
    records = read_all("labelimg", tmp_path)
    assert [(r.filepath, [type(e) for e in r.errors]) for r in records] == [
        (str(image.resolve()), [MalformedXMLError])]


def test_labelimg_malformed_xml_without_image_is_skipped(tmp_path):
    make_image(tmp_path / "x.jpg")
    write_text(tmp_path / "x.xml", annotation("x.jpg"))
    orphan = write_text(tmp_path / "orphan.xml", "<annotation>")
    skipped = [r for r in read_all("labelimg", tmp_path) if isinstance(r, SkippedFile)]
    assert [(s.path, type(s.error)) for s in skipped] == [(str(orphan), MalformedXMLError)]


# ---- image headers -----------------------------------------------------------------------------------

def test_read_header_png(tmp_path):
    path = make_image(tmp_path / "a.png", size=(32, 24), fmt="PNG")
    header = read_header(str(path))
    assert (header.width, header.height, header.mime_type) == (32, 24, "image/png")
    assert header.size_bytes == path.stat().st_size
    assert header.num_channels == 3


def test_read_header_jpeg(tmp_path):
    header = read_header(str(make_image(tmp_path / "a.jpg", size=(40, 30))))
    assert (header.width, header.height, header.mime_type) == (40, 30, "image/jpeg")


def test_read_header_does_not_decode_pixels(tmp_path):
    # A JPEG cut just after its start-of-scan marker has a complete header but no pixel data.
    path = make_image(tmp_path / "a.jpg", size=(40, 30))
    data = path.read_bytes()
    path.write_bytes(data[:data.index(b"\xff\xda") + 20])
    assert (read_header(str(path)).width, read_header(str(path)).height) == (40, 30)


def test_read_header_text_file_renamed_jpg(tmp_path):
    path = write_text(tmp_path / "notes.jpg", "this is not an image\n")
    with pytest.raises(UnreadableImageError) as info:
        read_header(str(path))
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert info.value.fix


def test_read_header_jpeg_truncated_to_ten_bytes(tmp_path):
    path = make_image(tmp_path / "a.jpg")
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(UnreadableImageError) as info:
        read_header(str(path))
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
