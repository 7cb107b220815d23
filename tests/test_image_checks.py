"""image_checks on real generated files: each defect triggers its fact, and the clean file does not."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.parallel import CHUNK
from curate.image_checks import (APPLEDOUBLE_MAGIC, TRAILING_SLACK_BYTES, ImageFacts,
                                 inspect_image, inspect_images)


def _noise(width: int = 96, height: int = 64, mode: str = "RGB") -> Image.Image:
    """Random pixels, so a JPEG has a long scan whose truncation is visible."""
    channels = {"RGB": 3, "RGBA": 4}.get(mode, 1)
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(), mode="L" if channels == 1 else mode)


def _save(image: Image.Image, path: Path, fmt: str, **options) -> Path:
    image.save(path, format=fmt, **options)
    return path


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    _noise().save(buffer, format="JPEG")
    return buffer.getvalue()


def test_good_jpeg(tmp_path):
    facts = inspect_image(str(_save(_noise(), tmp_path / "good.JPG", "JPEG")))
    assert facts == ImageFacts(str(tmp_path / "good.JPG"), readable=True, format="JPEG",
                               extension_matches=True, mode="RGB", bit_depth=8, width=96, height=64)


def test_good_png(tmp_path):
    facts = inspect_image(str(_save(_noise(), tmp_path / "good.png", "PNG")))
    assert (facts.readable, facts.format, facts.extension_matches) == (True, "PNG", True)
    assert not facts.truncated
    assert (facts.mode, facts.bit_depth, facts.width, facts.height) == ("RGB", 8, 96, 64)


@pytest.mark.parametrize("name", ["a.jpeg", "a.jpg", "a.JPEG"])
def test_jpeg_extensions_are_equivalent(tmp_path, name):
    assert inspect_image(str(_save(_noise(), tmp_path / name, "JPEG"))).extension_matches


def test_tif_and_tiff_match_tiff(tmp_path):
    for name in ("a.tif", "a.tiff"):
        facts = inspect_image(str(_save(_noise(), tmp_path / name, "TIFF")))
        assert (facts.format, facts.extension_matches, facts.truncated) == ("TIFF", True, False)


def test_png_saved_as_jpg_does_not_match(tmp_path):
    facts = inspect_image(str(_save(_noise(), tmp_path / "really_png.jpg", "PNG")))
    assert facts.readable and facts.format == "PNG" and not facts.extension_matches


def test_jpeg_cut_to_60_percent_is_truncated(tmp_path):
    data = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * 0.6)])
    facts = inspect_image(str(path))
    assert facts.readable and facts.truncated


def test_jpeg_with_padding_after_eoi_is_not_truncated(tmp_path):
    path = tmp_path / "padded.jpg"
    path.write_bytes(_jpeg_bytes() + bytes(100))
    assert not inspect_image(str(path)).truncated


def test_jpeg_with_more_padding_than_the_slack_counts_as_truncated(tmp_path):
    path = tmp_path / "long_trailer.jpg"
    path.write_bytes(_jpeg_bytes() + bytes(TRAILING_SLACK_BYTES + 1))
    assert inspect_image(str(path)).truncated


def test_exif_thumbnail_end_marker_does_not_hide_a_cut_scan(tmp_path):
    image = _noise()
    thumbnail = io.BytesIO()
    image.resize((16, 16)).save(thumbnail, format="JPEG")
    exif = image.getexif()
    exif[274] = 1
    exif_bytes = exif.tobytes() + thumbnail.getvalue()  # the thumbnail's FF D9 sits in APP1
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif_bytes)
    data = buffer.getvalue()
    scan_data = data.rindex(b"\xff\xda") + 20  # the main image's scan; the thumbnail has one too
    path = tmp_path / "cut_after_scan_start.jpg"
    path.write_bytes(data[:scan_data])
    facts = inspect_image(str(path))
    assert facts.readable and facts.truncated


def test_png_cut_before_iend_is_truncated(tmp_path):
    buffer = io.BytesIO()
    _noise().save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:-30])
    facts = inspect_image(str(path))
    assert facts.readable and facts.truncated


def test_cut_bmp_is_truncated_by_decoding(tmp_path):
    buffer = io.BytesIO()
    _noise().save(buffer, format="BMP")
    path = tmp_path / "cut.bmp"
    path.write_bytes(buffer.getvalue()[:-500])
    facts = inspect_image(str(path))
    assert facts.readable and facts.truncated and facts.extension_matches


def test_text_file_named_jpg_is_unreadable(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    facts = inspect_image(str(path))
    assert not facts.readable and not facts.extension_matches and facts.format is None
    assert "cannot identify" in facts.error


def test_missing_file_is_unreadable_not_an_exception(tmp_path):
    facts = inspect_image(str(tmp_path / "absent.jpg"))
    assert not facts.readable and facts.error.startswith("FileNotFoundError")


def test_appledouble_file(tmp_path):
    path = tmp_path / "._x.jpg"
    # the header macOS writes: magic, version 2, 16 filler bytes, then the entry count
    path.write_bytes(APPLEDOUBLE_MAGIC + b"\x00\x02\x00\x00" + bytes(16) + b"\x00\x02" + bytes(60))
    facts = inspect_image(str(path))
    assert facts.appledouble and facts.hidden and not facts.readable
    assert "AppleDouble" in facts.error


def test_hidden_image_is_readable_and_hidden(tmp_path):
    facts = inspect_image(str(_save(_noise(), tmp_path / ".hidden.png", "PNG")))
    assert facts.readable and facts.hidden and not facts.appledouble


def test_exif_orientation(tmp_path):
    image = _noise()
    exif = image.getexif()
    exif[274] = 6
    facts = inspect_image(str(_save(image, tmp_path / "rotated.jpg", "JPEG", exif=exif)))
    assert facts.exif_orientation == 6
    assert (facts.width, facts.height) == (96, 64)  # as stored, not as displayed


@pytest.mark.parametrize("mode, fmt, bit_depth", [("L", "PNG", 8), ("L", "JPEG", 8), ("RGBA", "PNG", 8),
                                                  ("P", "PNG", 8)])
def test_modes(tmp_path, mode, fmt, bit_depth):
    image = _noise(mode="RGBA" if mode == "RGBA" else "L")
    if mode == "P":
        image = _noise().convert("P")
    facts = inspect_image(str(_save(image, tmp_path / f"x.{fmt.lower()}", fmt)))
    assert (facts.mode, facts.bit_depth, facts.truncated) == (mode, bit_depth, False)


def test_16_bit_png(tmp_path):
    pixels = np.arange(64 * 96, dtype=np.uint16).reshape(64, 96) * 10
    facts = inspect_image(str(_save(Image.fromarray(pixels), tmp_path / "deep.png", "PNG")))
    assert (facts.mode, facts.bit_depth, facts.truncated) == ("I;16", 16, False)


def test_parallel_matches_serial_and_keeps_order(tmp_path):
    samples = [_save(_noise(), tmp_path / "a.jpg", "JPEG"), _save(_noise(), tmp_path / "b.jpg", "PNG"),
               tmp_path / "missing.png", _save(_noise(mode="L"), tmp_path / "c.png", "PNG")]
    paths = [str(samples[i % len(samples)]) for i in range(2 * CHUNK + 7)]  # enough for the pool
    serial = list(inspect_images(paths, workers=1))
    parallel = list(inspect_images(paths, workers=2))
    assert parallel == serial
    assert [facts.path for facts in parallel] == paths
    assert replace(serial[2], error=None) == ImageFacts(paths[2], readable=False)
