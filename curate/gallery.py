"""A PNG contact sheet of example images with their boxes drawn, so a person can judge a finding.

``draw_gallery(items, path, title=...)`` writes one grid: a title band, then one tile per item
(``columns`` across), each a ``thumb_size`` square with the image fitted in it (aspect kept, small
images scaled up, the rest of the square dark) and the caption below it.

* Boxes are FiftyOne relative ``[x, y, w, h]`` of the **stored** pixels. EXIF orientation is NOT
  applied: a rotated display would no longer match the boxes (and the clean rule about orientation
  needs to show the pixels the boxes were measured on).
* Offending boxes (``highlight``, indices into ``boxes``) are thick red and drawn last, on top; the
  others thin green. Each tile is drawn on its own square, so nothing bleeds into a neighbour, and a
  box edge beyond the square is pulled onto its border: a box partly or wholly outside the image stays
  visible. Boxes with a non-finite coordinate cannot be placed and are not drawn.
* An image that cannot be read becomes a grey tile saying "unreadable". A JPEG cut short is shown as
  far as it decodes (the rest grey) and labelled "truncated".
* 16-bit and float images are stretched from their own minimum to maximum for display.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from curate.image_checks import JPEG_EOI, PIL_READ_ERRORS

TITLE_HEIGHT = 28  # px band above the grid
TILE_PADDING = 6  # px around each tile, so neighbouring thumbnails do not touch
CAPTION_LINES = 2  # a longer caption is cut, ending in ELLIPSIS
CAPTION_LINE_HEIGHT = 14  # px; PIL's default font is ~11 px tall
CAPTION_HEIGHT = CAPTION_LINES * CAPTION_LINE_HEIGHT
ELLIPSIS = "..."  # ASCII: the bitmap fallback font has no U+2026
HIGHLIGHT_LINE_WIDTH = 4  # px: offending boxes
NORMAL_LINE_WIDTH = 1  # px: the other boxes, for context
HIGHLIGHT_COLOUR = (255, 0, 0)
NORMAL_COLOUR = (0, 200, 0)
BACKGROUND = (255, 255, 255)
LETTERBOX = (48, 48, 48)  # the part of a tile's square outside the image
UNREADABLE_GREY = (160, 160, 160)
TEXT_COLOUR = (0, 0, 0)


@dataclass(frozen=True)
class GalleryItem:
    filepath: str
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # relative xywh
    highlight: list[int] = field(default_factory=list)  # indices into boxes
    caption: str = ""


def draw_gallery(items: list[GalleryItem], path: Path, *, title: str, columns: int = 4,
                 thumb_size: int = 256) -> Path:
    """Write the grid of ``items`` to ``path`` (PNG) and return ``path``."""
    if columns < 1 or thumb_size < 1:
        raise ValueError(f"columns and thumb_size must be positive, got {columns} and {thumb_size}")
    font = ImageFont.load_default()
    columns = max(1, min(columns, len(items)))
    rows = math.ceil(len(items) / columns)
    cell_width = thumb_size + 2 * TILE_PADDING
    cell_height = thumb_size + CAPTION_HEIGHT + 2 * TILE_PADDING
    canvas = Image.new("RGB", (columns * cell_width, TITLE_HEIGHT + rows * cell_height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((TILE_PADDING, TILE_PADDING), _fit_line(title, canvas.width - 2 * TILE_PADDING, font),
              fill=TEXT_COLOUR, font=font)
    for index, item in enumerate(items):
        left = (index % columns) * cell_width + TILE_PADDING
        top = TITLE_HEIGHT + (index // columns) * cell_height + TILE_PADDING
        canvas.paste(_draw_tile(item, thumb_size, font), (left, top))
        for line_number, line in enumerate(_caption_lines(item.caption, thumb_size, font)):
            draw.text((left, top + thumb_size + line_number * CAPTION_LINE_HEIGHT), line,
                      fill=TEXT_COLOUR, font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def _draw_tile(item: GalleryItem, size: int, font) -> Image.Image:
    tile = Image.new("RGB", (size, size), LETTERBOX)
    image, note = load_stored_pixels(item.filepath, size)
    if image is None:
        tile.paste(UNREADABLE_GREY, (0, 0, size, size))
        _centred_text(ImageDraw.Draw(tile), "unreadable", size, font)
        return tile
    scale = min(size / image.width, size / image.height)
    shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    offset = ((size - shown.width) // 2, (size - shown.height) // 2)
    tile.paste(shown, offset)
    draw = ImageDraw.Draw(tile)
    _draw_boxes(draw, item, offset, shown.size, size)
    if note:
        draw.text((2, 2), note, fill=HIGHLIGHT_COLOUR, font=font)
    return tile


def _draw_boxes(draw: ImageDraw.ImageDraw, item: GalleryItem, offset: tuple[int, int],
                shown_size: tuple[int, int], tile_size: int) -> None:
    highlighted = set(item.highlight)
    for index in sorted(range(len(item.boxes)), key=lambda i: i in highlighted):  # offending last, on top
        corners = _tile_corners(item.boxes[index], offset, shown_size, tile_size)
        if corners is None:
            continue
        is_offending = index in highlighted
        draw.rectangle(corners, outline=HIGHLIGHT_COLOUR if is_offending else NORMAL_COLOUR,
                       width=HIGHLIGHT_LINE_WIDTH if is_offending else NORMAL_LINE_WIDTH)


def _tile_corners(box, offset: tuple[int, int], shown_size: tuple[int, int],
                  tile_size: int) -> tuple[int, int, int, int] | None:
    """Relative xywh to pixel corners in the tile, ordered and pulled onto the tile's edge."""
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    xs = sorted(offset[0] + v * shown_size[0] for v in (x, x + w))
    ys = sorted(offset[1] + v * shown_size[1] for v in (y, y + h))
    last = tile_size - 1
    x0, x1 = (min(max(round(v), 0), last) for v in xs)
    y0, y1 = (min(max(round(v), 0), last) for v in ys)
    return x0, y0, x1, y1


def load_stored_pixels(filepath: str, size: int) -> tuple[Image.Image | None, str]:
    """The image as RGB, not rotated, and a note ("truncated" or ""); None when it cannot be read."""
    try:
        with open(filepath, "rb") as handle:
            data = handle.read()
    except OSError:
        return None, ""
    # a JPEG cut short decodes as far as it goes once it is given its end marker
    for ending, note in ((b"", ""), (JPEG_EOI, "truncated")):
        try:
            return _decode_rgb(data + ending, size), note
        except PIL_READ_ERRORS:
            continue
    return None, ""


def _decode_rgb(data: bytes, size: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= the tile
        image.load()
        if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
            return _stretch_to_grey(image).convert("RGB")
        return image.convert("RGB")


def _stretch_to_grey(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def _centred_text(draw: ImageDraw.ImageDraw, text: str, size: int, font) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((size - (right - left)) // 2, (size - (bottom - top)) // 2), text, fill=TEXT_COLOUR,
              font=font)


def _caption_lines(caption: str, width: int, font) -> list[str]:
    """Wrap at any character (captions are mostly file names), keep CAPTION_LINES, mark a cut."""
    lines: list[str] = []
    for paragraph in caption.splitlines() or [""]:
        while len(lines) <= CAPTION_LINES:
            cut = _longest_fitting_prefix(paragraph, width, font)
            lines.append(paragraph[:cut])
            paragraph = paragraph[cut:]
            if not paragraph:
                break
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES]
        lines[-1] = _with_ellipsis(lines[-1], width, font)
    return lines


def _fit_line(text: str, width: int, font) -> str:
    return text if font.getlength(text) <= width else _with_ellipsis(text, width, font)


def _with_ellipsis(text: str, width: int, font) -> str:
    cut = _longest_fitting_prefix(text, width - font.getlength(ELLIPSIS), font)
    return text[:cut] + ELLIPSIS


def _longest_fitting_prefix(text: str, width: float, font) -> int:
    """Length of the longest prefix of ``text`` no wider than ``width`` (at least 1 character)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low if text else 0
