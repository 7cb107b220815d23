"""Facts about image files that `curate clean` judges, read from headers and file ends, in parallel.

``inspect_image(path)`` returns an :class:`ImageFacts` and never raises for a bad file;
``inspect_images(paths)`` does the same for many files, in order, across processes. The facts:

* ``readable``: PIL identified the file and parsed its header. When False, ``error`` says why
  (``"UnidentifiedImageError: cannot identify image file ..."``, ``"FileNotFoundError: ..."``) and
  every image fact below is None / False.
* ``format``: PIL's format name (``"JPEG"``, ``"PNG"``, ``"MPO"`` for a multi-picture JPEG, ...).
* ``extension_matches``: the file extension is one PIL registers for this format, case-insensitive
  (``.jpg``/``.jpeg``/``.JPG``; ``.tif``/``.tiff``). An MPO counts as a JPEG: phones write them as
  ``.jpg``. False when the file is unreadable (no content to match), so check ``readable`` first.
* ``truncated``: the file ends before its image data does. Decided without decoding pixels for JPEG
  and PNG, which is ~all of a detection dataset:

  - JPEG/MPO: no EOI marker (``FF D9``) among the last ``TRAILING_SLACK_BYTES`` bytes, looking only
    after the start of the scan. Entropy-coded data escapes every ``FF`` byte, so ``FF D9`` there is
    always a real EOI; the floor keeps an EXIF thumbnail's own EOI from counting. Cameras, recovery
    tools and some uploaders leave padding or junk after EOI, hence the slack. A file with a longer
    trailer (Google Motion Photo: a video after the JPEG) is reported as truncated.
  - PNG: no complete ``IEND`` chunk (length 0, type, CRC: 12 fixed bytes) in the same tail window.
  - Other formats (BMP, GIF, TIFF, WebP, ...): the pixels are decoded; a decode error counts as
    truncated. These formats are rare here, so the cost of a decode is accepted for a sure answer.
    (``Image.verify()`` checks nothing for most of them, and PIL raises at open for a cut WebP.)

  False for unreadable files. Relies on ``ImageFile.LOAD_TRUNCATED_IMAGES`` being False (PIL's
  default) for the decoded formats.
* ``exif_orientation``: EXIF tag 274 as an int when present (1 = as stored; 5-8 swap width and
  height on display), else None. Malformed EXIF gives None. For PNG only an ``eXIf`` chunk before
  the image data is seen: PIL would decode every pixel to look for one after it.
* ``mode``: PIL mode (``"RGB"``, ``"L"``, ``"RGBA"``, ``"P"``, ``"I;16"``, ``"CMYK"``, ...).
* ``bit_depth``: bits per sample as stored: PNG from its IHDR (1, 2, 4, 8 or 16; a 16-bit RGB PNG
  opens in PIL as 8-bit ``"RGB"`` but reports 16), TIFF from BitsPerSample, others from the mode
  (8 for ``L``/``RGB``/``P``, 16 for ``I;16``). None where neither says.
* ``hidden``: the basename starts with ``.``.
* ``appledouble``: the basename starts with ``._`` or the file starts with the AppleDouble magic
  ``00 05 16 07``: macOS metadata (a resource fork) copied beside ``x.jpg`` as ``._x.jpg``. A file
  with the magic is reported unreadable without asking PIL.
* ``width``, ``height``: pixel size as stored, before any EXIF rotation.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from PIL import Image

from curate.parallel import map_files
from curate import imageinfo  # noqa: F401  (sets Image.MAX_IMAGE_PIXELS, in spawned workers too)

TRAILING_SLACK_BYTES = 4096  # bytes allowed after JPEG EOI / PNG IEND: one disk cluster of padding
HEAD_BYTES = 32  # read before PIL: the AppleDouble magic and the PNG IHDR bit depth are in here
APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"
JPEG_EOI = b"\xff\xd9"
PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # length 0, type, CRC of an empty IEND
PNG_IHDR_TYPE = slice(12, 16)  # signature (8) + chunk length (4), then the chunk type
PNG_BIT_DEPTH_OFFSET = 24  # ... + type (4) + width (4) + height (4)
EXIF_ORIENTATION_TAG = 274
TIFF_BITS_PER_SAMPLE_TAG = 258
APPLEDOUBLE_ERROR = "AppleDouble file (macOS resource fork metadata), not an image"

_FORMAT_FAMILY = {"MPO": "JPEG"}  # a multi-picture JPEG is a JPEG file with a second image appended
_MODE_BIT_DEPTH = {"1": 1, "L": 8, "P": 8, "LA": 8, "PA": 8, "RGB": 8, "RGBA": 8, "RGBX": 8,
                   "CMYK": 8, "YCbCr": 8, "LAB": 8, "HSV": 8, "I;16": 16, "I;16L": 16,
                   "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}
# What PIL's plugins raise on corrupt or cut input (see Pillow's own fuzzing tests).
PIL_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError,
                   Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageFacts:
    """What one file is; see the module docstring for each field's exact meaning."""

    path: str
    readable: bool
    error: str | None = None
    format: str | None = None
    extension_matches: bool = False
    truncated: bool = False
    exif_orientation: int | None = None
    mode: str | None = None
    bit_depth: int | None = None
    hidden: bool = False
    appledouble: bool = False
    width: int | None = None
    height: int | None = None


def inspect_image(path: str) -> ImageFacts:
    """The facts of the file at ``path``; an unreadable file gives ``readable=False`` and the reason."""
    name = os.path.basename(path)
    hidden = name.startswith(".")
    appledouble = name.startswith("._")
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            if head.startswith(APPLEDOUBLE_MAGIC):
                return ImageFacts(path, readable=False, error=APPLEDOUBLE_ERROR, hidden=hidden,
                                  appledouble=True)
            handle.seek(0)
            with Image.open(handle) as image:
                return _open_image_facts(path, image, handle, head, hidden=hidden,
                                         appledouble=appledouble)
    except PIL_READ_ERRORS as exc:
        return ImageFacts(path, readable=False, error=f"{type(exc).__name__}: {exc}", hidden=hidden,
                          appledouble=appledouble)


def inspect_images(paths: Iterable[str], *, workers: int | None = None) -> Iterator[ImageFacts]:
    """Facts of ``paths`` in order, computed by ``workers`` processes (default: all cores)."""
    return map_files(inspect_image, paths, workers=workers)


def _open_image_facts(path: str, image: Image.Image, handle: BinaryIO, head: bytes, *,
                      hidden: bool, appledouble: bool) -> ImageFacts:
    scan_start = handle.tell()  # for a JPEG, PIL's header parser stops at the first scan's data
    width, height = image.size
    mode, image_format = image.mode, image.format
    orientation = _exif_orientation(image)
    bit_depth = _bit_depth(image, head)
    truncated = _is_truncated(image, handle, scan_start=scan_start)
    return ImageFacts(path, readable=True, format=image_format,
                      extension_matches=_extension_matches(path, image_format), truncated=truncated,
                      exif_orientation=orientation, mode=mode, bit_depth=bit_depth, hidden=hidden,
                      appledouble=appledouble, width=width, height=height)


def _family(image_format: str | None) -> str | None:
    return _FORMAT_FAMILY.get(image_format or "", image_format)


@functools.cache
def _format_of_extension() -> dict[str, str]:
    return {ext.lower(): fmt for ext, fmt in Image.registered_extensions().items()}


def _extension_matches(path: str, image_format: str | None) -> bool:
    extension = os.path.splitext(path)[1].lower()
    expected = _format_of_extension().get(extension)
    return expected is not None and _family(expected) == _family(image_format)


def _is_truncated(image: Image.Image, handle: BinaryIO, *, scan_start: int) -> bool:
    family = _family(image.format)
    if family == "JPEG":
        return not _tail_contains(handle, JPEG_EOI, not_before=scan_start)
    if family == "PNG":
        return not _tail_contains(handle, PNG_IEND_CHUNK, not_before=0)
    try:
        image.load()
    except PIL_READ_ERRORS:
        return True
    return False


def _tail_contains(handle: BinaryIO, marker: bytes, *, not_before: int) -> bool:
    """Whether ``marker`` lies after ``not_before`` and within ``TRAILING_SLACK_BYTES`` of the end."""
    size = handle.seek(0, os.SEEK_END)
    start = max(not_before, size - len(marker) - TRAILING_SLACK_BYTES)
    handle.seek(start)
    return marker in handle.read()


def _exif_orientation(image: Image.Image) -> int | None:
    if image.format == "PNG" and "exif" not in image.info:
        return None  # PngImageFile.getexif() would decode all pixels to search after the image data
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG)
    except PIL_READ_ERRORS:
        return None
    return value if isinstance(value, int) else None


def _bit_depth(image: Image.Image, head: bytes) -> int | None:
    if image.format == "PNG" and head[PNG_IHDR_TYPE] == b"IHDR":
        return head[PNG_BIT_DEPTH_OFFSET]
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(TIFF_BITS_PER_SAMPLE_TAG)
        bits = bits[0] if isinstance(bits, tuple) and bits else bits
        if isinstance(bits, int):
            return bits
    return _MODE_BIT_DEPTH.get(image.mode)
