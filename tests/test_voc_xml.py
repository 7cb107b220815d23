"""read_voc_xml: every error path by mangling ONE field of a valid file (Datumaro's mangle_xml), the
hardened parser (XXE, billion laughs, UTF-16), attributes, and voc_write -> read_voc_xml round trips."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from curate.boxes import PixelConvention
from curate.errors import (
    AnnotationError,
    InvalidValueError,
    MalformedXMLError,
    MissingFieldError,
    UnsafeXMLError,
)
from curate.formats.records import BoxRecord
from curate.formats.voc_write import voc_xml_bytes
from curate.formats.voc_xml import read_voc_xml

LABELIMG = PixelConvention.EDGES_ZERO_BASED
VOC = PixelConvention.VOC_ONE_BASED
REMOVE = object()

# Three objects; the tests mangle the middle one (index 1) and expect the other two to survive.
OBJECTS = (("cat", (1, 2, 11, 12)), ("dog", (5, 6, 20, 18)), ("bird", (0, 0, 31, 23)))


def labelimg_xml(objects=OBJECTS, width="32", height="24", extra="") -> bytes:
    """A LabelImg-style annotation of a 32x24 image, one <object> per (label, (xmin, ymin, xmax, ymax))."""
    parts = [f"""<annotation>
  <folder>images</folder>
  <filename>img.jpg</filename>
  <path>/home/someone/images/img.jpg</path>
  <source><database>Unknown</database></source>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  <segmented>0</segmented>"""]
    for label, (xmin, ymin, xmax, ymax) in objects:
        parts.append(f"""  <object>
    <name>{label}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>{extra}
  </object>""")
    parts.append("</annotation>\n")
    return "\n".join(parts).encode()


def mangle_xml(data: bytes, xpath: str, value) -> bytes:
    """``data`` with the ONE element at ``xpath`` removed (value REMOVE) or given ``value`` as text,
    or a new child added when ``xpath`` matches nothing but its parent exists."""
    root = etree.fromstring(data)
    found = root.xpath(xpath)
    assert len(found) <= 1, f"{xpath} matches {len(found)} elements"
    if found and value is REMOVE:
        found[0].getparent().remove(found[0])
    elif found:
        found[0].text = value
    else:
        parent_path, _, tag = xpath.rpartition("/")
        (parent,) = root.xpath(parent_path)
        etree.SubElement(parent, tag).text = value
    return etree.tostring(root)


def write(tmp_path: Path, data: bytes, name: str = "img.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_mangled(tmp_path, xpath, value):
    path = write(tmp_path, mangle_xml(labelimg_xml(), xpath, value))
    return path, read_voc_xml(path, LABELIMG)


def assert_error(error, cls, path: Path, field: str):
    assert type(error) is cls
    assert error.path == str(path)
    assert error.field == field
    assert error.fix.strip()
    assert str(path) in str(error)


def test_valid_file_reads_every_box(tmp_path):
    ann = read_voc_xml(write(tmp_path, labelimg_xml()), LABELIMG)
    assert ann.errors == []
    assert [(b.label, b.box) for b in ann.boxes] == [
        ("cat", (1.0, 2.0, 11.0, 12.0)), ("dog", (5.0, 6.0, 20.0, 18.0)), ("bird", (0.0, 0.0, 31.0, 23.0))]
    assert ann.filename == "img.jpg"
    assert ann.folder == "images"
    assert ann.declared_size == (32, 24, 3)


def test_voc_convention_shifts_minimum_by_one(tmp_path):
    ann = read_voc_xml(write(tmp_path, labelimg_xml(objects=[("cat", (1, 2, 11, 12))])), VOC)
    assert ann.boxes[0].box == (0.0, 1.0, 11.0, 12.0)


# (xpath in the valid file, new value or REMOVE, expected error class, expected .field)
OBJECT_ERRORS = [
    ("object[2]/name", REMOVE, MissingFieldError, "object[1]/name"),
    ("object[2]/name", "  ", MissingFieldError, "object[1]/name"),
    ("object[2]/bndbox", REMOVE, MissingFieldError, "object[1]/bndbox"),
    ("object[2]/bndbox/xmin", REMOVE, MissingFieldError, "object[1]/bndbox/xmin"),
    ("object[2]/bndbox/ymin", REMOVE, MissingFieldError, "object[1]/bndbox/ymin"),
    ("object[2]/bndbox/xmax", REMOVE, MissingFieldError, "object[1]/bndbox/xmax"),
    ("object[2]/bndbox/ymax", REMOVE, MissingFieldError, "object[1]/bndbox/ymax"),
    ("object[2]/bndbox/ymax", "", MissingFieldError, "object[1]/bndbox/ymax"),
    ("object[2]/bndbox/xmin", "abc", InvalidValueError, "object[1]/bndbox/xmin"),
    ("object[2]/bndbox/ymin", "12px", InvalidValueError, "object[1]/bndbox/ymin"),
    ("object[2]/bndbox/xmax", "nan", InvalidValueError, "object[1]/bndbox/xmax"),
    ("object[2]/bndbox/ymax", "inf", InvalidValueError, "object[1]/bndbox/ymax"),
    ("object[2]/bndbox/xmin", "-Infinity", InvalidValueError, "object[1]/bndbox/xmin"),
    ("object[2]/difficult", "2", InvalidValueError, "object[1]/difficult"),
    ("object[2]/truncated", "maybe", InvalidValueError, "object[1]/truncated"),
    ("object[2]/occluded", "-1", InvalidValueError, "object[1]/occluded"),
]


@pytest.mark.parametrize("xpath, value, cls, field", OBJECT_ERRORS,
                         ids=[f"{f}={'REMOVED' if v is REMOVE else repr(v)}" for _, v, _, f in OBJECT_ERRORS])
def test_object_error_is_typed_and_names_file_and_field(tmp_path, xpath, value, cls, field):
    path, ann = read_mangled(tmp_path, xpath, value)
    assert len(ann.errors) == 1
    assert_error(ann.errors[0], cls, path, field)


@pytest.mark.parametrize("xpath, value, cls, field", OBJECT_ERRORS[:1] + OBJECT_ERRORS[8:9])
def test_object_error_keeps_the_other_boxes(tmp_path, xpath, value, cls, field):
    _, ann = read_mangled(tmp_path, xpath, value)
    assert [(b.label, b.box) for b in ann.boxes] == [
        ("cat", (1.0, 2.0, 11.0, 12.0)), ("bird", (0.0, 0.0, 31.0, 23.0))]


def test_errors_in_two_objects_are_both_reported(tmp_path):
    data = mangle_xml(labelimg_xml(), "object[1]/bndbox/xmin", "x")
    data = mangle_xml(data, "object[3]/name", REMOVE)
    ann = read_voc_xml(write(tmp_path, data), LABELIMG)
    assert [e.field for e in ann.errors] == ["object[0]/bndbox/xmin", "object[2]/name"]
    assert [b.label for b in ann.boxes] == ["dog"]


@pytest.mark.parametrize("tag, expected_size", [("width", (None, 24, 3)), ("height", (32, None, 3))])
def test_non_numeric_size_is_recorded_not_fatal(tmp_path, tag, expected_size):
    path, ann = read_mangled(tmp_path, f"size/{tag}", "wide")
    assert ann.declared_size == expected_size
    assert len(ann.errors) == 1
    assert_error(ann.errors[0], InvalidValueError, path, f"size/{tag}")
    assert len(ann.boxes) == 3


def test_missing_size_element_gives_no_declared_size(tmp_path):
    _, ann = read_mangled(tmp_path, "size", REMOVE)
    assert ann.declared_size is None
    assert ann.errors == []


def test_wrong_root_element_raises(tmp_path):
    data = labelimg_xml().replace(b"<annotation>", b"<annotations>").replace(
        b"</annotation>", b"</annotations>")
    path = write(tmp_path, data)
    with pytest.raises(MalformedXMLError) as info:
        read_voc_xml(path, LABELIMG)
    assert_error(info.value, MalformedXMLError, path, "/")
    assert "annotations" in info.value.detail


def test_not_well_formed_xml_raises(tmp_path):
    path = write(tmp_path, labelimg_xml()[:-30])  # cut inside the last object
    with pytest.raises(MalformedXMLError) as info:
        read_voc_xml(path, LABELIMG)
    assert_error(info.value, MalformedXMLError, path, "")


def test_empty_file_raises(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(MalformedXMLError) as info:
        read_voc_xml(path, LABELIMG)
    assert_error(info.value, MalformedXMLError, path, "")


# ---- hardened parser -------------------------------------------------------------------------------

XXE = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>img.jpg</filename>
  <object><name>&xxe;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>
"""

BILLION_LAUGHS = """<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
""" + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
              for i in range(1, 10)) + """]>
<annotation><object><name>&lol9;</name></object></annotation>
"""


PASSWD = Path("/etc/passwd")
PASSWD_LINES = [ln for ln in PASSWD.read_text().splitlines() if ln.strip()] if PASSWD.is_file() else []


def assert_unsafe_and_no_leak(path: Path):
    with pytest.raises(UnsafeXMLError) as info:
        read_voc_xml(path, LABELIMG)
    error = info.value
    assert_error(error, UnsafeXMLError, path, "<!DOCTYPE>")
    everything = " ".join([str(error), repr(error), str(error.to_dict()), str(error.__cause__),
                           str(error.__context__)])
    assert "root:x:0" not in everything
    assert not [line for line in PASSWD_LINES if line in everything]


def test_xxe_file_is_rejected_without_leaking_the_file(tmp_path):
    assert_unsafe_and_no_leak(write(tmp_path, XXE.format(encoding="UTF-8").encode("utf-8")))


def test_billion_laughs_is_rejected_quickly(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS.format(encoding="UTF-8").encode("utf-8"))
    start = time.monotonic()
    with pytest.raises(UnsafeXMLError):
        read_voc_xml(path, LABELIMG)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_xxe_file_is_rejected_without_leaking_the_file(tmp_path, codec):
    data = XXE.format(encoding="UTF-16").encode(codec)
    assert b"<!DOCTYPE" not in data  # the byte scan cannot see it; the parsed-DTD check must
    assert_unsafe_and_no_leak(write(tmp_path, data))


def test_utf16_billion_laughs_is_rejected_quickly(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS.format(encoding="UTF-16").encode("utf-16"))
    start = time.monotonic()
    with pytest.raises(AnnotationError):
        read_voc_xml(path, LABELIMG)
    assert time.monotonic() - start < 1.0


def test_utf16_billion_laughs_is_typed_as_unsafe(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS.format(encoding="UTF-16").encode("utf-16"))
    with pytest.raises(AnnotationError) as info:
        read_voc_xml(path, LABELIMG)
    assert type(info.value) is UnsafeXMLError, str(info.value)


# ---- attributes --------------------------------------------------------------------------------------

def test_flags_are_parsed_as_bools_and_pose_kept(tmp_path):
    data = labelimg_xml(objects=[("cat", (1, 2, 11, 12))])
    for xpath, value in (("object/difficult", "1"), ("object/truncated", "true"),
                         ("object/occluded", "1"), ("object/pose", "Left")):
        data = mangle_xml(data, xpath, value)
    ann = read_voc_xml(write(tmp_path, data), LABELIMG)
    assert ann.errors == []
    assert ann.boxes[0].attributes == {"difficult": True, "truncated": True, "occluded": True, "pose": "Left"}


def test_absent_and_zero_flags_are_false(tmp_path):
    data = mangle_xml(labelimg_xml(objects=[("cat", (1, 2, 11, 12))]), "object/truncated", REMOVE)
    attributes = read_voc_xml(write(tmp_path, data), LABELIMG).boxes[0].attributes
    assert attributes == {"difficult": False, "truncated": False, "occluded": False, "pose": "Unspecified"}


def test_decimal_coordinates_are_accepted(tmp_path):
    data = labelimg_xml(objects=[("cat", ("12.5", "3.25", "20.75", "23.0"))])
    ann = read_voc_xml(write(tmp_path, data), VOC)
    assert ann.errors == []
    assert ann.boxes[0].box == (11.5, 2.25, 20.75, 23.0)


def test_file_with_no_objects_has_empty_box_list(tmp_path):
    ann = read_voc_xml(write(tmp_path, labelimg_xml(objects=[])), LABELIMG)
    assert ann.boxes == []
    assert ann.errors == []


# ---- voc_write -> read_voc_xml ---------------------------------------------------------------------

WRITTEN = [BoxRecord("cat", (0.0, 0.0, 10.0, 10.0), {"difficult": True, "truncated": False, "pose": "Left"}),
           BoxRecord("dog", (4.0, 6.0, 32.0, 24.0), {"difficult": False, "truncated": True})]


@pytest.mark.parametrize("convention", [VOC, LABELIMG])
def test_written_xml_reads_back_the_same_boxes(tmp_path, convention):
    data = voc_xml_bytes("img.jpg", 32, 24, 3, WRITTEN, convention)
    ann = read_voc_xml(write(tmp_path, data), convention)
    assert ann.errors == []
    assert [(b.label, b.box) for b in ann.boxes] == [(b.label, b.box) for b in WRITTEN]
    assert [(b.attributes["difficult"], b.attributes["truncated"]) for b in ann.boxes] == [
        (True, False), (False, True)]
    assert [b.attributes["pose"] for b in ann.boxes] == ["Left", "Unspecified"]
    assert (ann.filename, ann.declared_size) == ("img.jpg", (32, 24, 3))


def test_voc_writer_uses_one_based_indices(tmp_path):
    data = voc_xml_bytes("img.jpg", 32, 24, 3, WRITTEN[:1], VOC)
    assert etree.fromstring(data).findtext("object/bndbox/xmin") == "1"


@pytest.mark.parametrize("convention", [VOC, LABELIMG])
def test_written_xml_with_no_boxes_reads_back_empty(tmp_path, convention):
    data = voc_xml_bytes("img.jpg", 32, 24, 3, [], convention)
    ann = read_voc_xml(write(tmp_path, data), convention)
    assert (ann.boxes, ann.errors) == ([], [])
