"""True image size and type from the file header, without decoding pixels."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from curate.errors import UnreadableImageError

_CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "I;16": 1, "LA": 2, "PA": 2, "RGB": 3,
             "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4, "RGBX": 4}
# Anything larger is refused before decoding: a decompression bomb, not a photo.
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    size_bytes: int
    mtime_ns: int
    mime_type: str
    mode: str

    @property
    def num_channels(self) -> int:
        return _CHANNELS.get(self.mode, 3)


def read_header(path: str) -> ImageHeader:
    """Header facts of the image at ``path``; UnreadableImageError when it is not an image."""
    try:
        stat = os.stat(path)
        with Image.open(path) as image:
            width, height = image.size
            mime = Image.MIME.get(image.format or "", "application/octet-stream")
            mode = image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(path, "", f"cannot read the image header ({exc.__class__.__name__}: "
                                   f"{exc})", "re-export the image or delete it") from None
    return ImageHeader(width, height, stat.st_size, stat.st_mtime_ns, mime, mode)
