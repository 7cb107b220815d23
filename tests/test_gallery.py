"""gallery.draw_gallery on generated images, with box positions computed by hand."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFont

from curate.gallery import (CAPTION_HEIGHT, CAPTION_LINES, ELLIPSIS, HIGHLIGHT_COLOUR, LETTERBOX,
                            NORMAL_COLOUR, TILE_PADDING, TITLE_HEIGHT, UNREADABLE_GREY, GalleryItem,
                            _caption_lines, draw_gallery)

GREY = (128, 128, 128)
THUMB = 100
# A 200x100 image in a 100 px tile: scale 0.5, shown 100x50, centred 25 px down.
TILE_LEFT, TILE_TOP = TILE_PADDING, TITLE_HEIGHT + TILE_PADDING  # the first tile's corner
IMAGE_TOP = 25


def _grey_image(path, **save_options):
    Image.new("RGB", (200, 100), GREY).save(path, **save_options)
    return str(path)


def _pixel(png, x, y):
    with Image.open(png) as image:
        return image.convert("RGB").getpixel((TILE_LEFT + x, TILE_TOP + y))


def test_grid_size_for_items_and_columns(tmp_path):
    image = _grey_image(tmp_path / "g.png")
    items = [GalleryItem(image, caption=f"item {i}") for i in range(5)]
    png = draw_gallery(items, tmp_path / "grid.png", title="five", columns=2, thumb_size=64)
    cell_width, cell_height = 64 + 2 * TILE_PADDING, 64 + CAPTION_HEIGHT + 2 * TILE_PADDING
    with Image.open(png) as grid:
        assert grid.size == (2 * cell_width, TITLE_HEIGHT + 3 * cell_height)


def test_fewer_items_than_columns_uses_only_the_columns_needed(tmp_path):
    png = draw_gallery([GalleryItem(_grey_image(tmp_path / "g.png"))], tmp_path / "one.png", title="one",
                       columns=4, thumb_size=64)
    with Image.open(png) as grid:
        assert grid.width == 64 + 2 * TILE_PADDING


def test_highlighted_box_is_red_and_others_green(tmp_path):
    offending = (0.25, 0.2, 0.5, 0.6)  # tile pixels x 25..75, y 25 + 10 .. 25 + 40
    context = (0.05, 0.1, 0.1, 0.1)  # tile pixels x 5..15, y 30..35
    item = GalleryItem(_grey_image(tmp_path / "g.jpg"), [context, offending], highlight=[1],
                       caption="IoU 0.93")
    png = draw_gallery([item], tmp_path / "boxes.png", title="overlap", thumb_size=THUMB)
    assert _pixel(png, 25, IMAGE_TOP + 25) == HIGHLIGHT_COLOUR  # left edge, half way down
    assert _pixel(png, 50, IMAGE_TOP + 10) == HIGHLIGHT_COLOUR  # top edge
    assert _pixel(png, 5, 32) == NORMAL_COLOUR
    assert _pixel(png, 50, IMAGE_TOP + 25) == GREY  # inside the box: the image
    assert _pixel(png, 50, 5) == LETTERBOX  # above the image, inside the tile


def test_boxes_outside_the_image_stay_visible(tmp_path):
    partly_left = (-0.5, 0.2, 0.6, 0.3)  # x -50..10: its left edge is pulled onto the tile's edge
    wholly_right = (1.5, 0.5, 0.2, 0.2)  # x 150..170: drawn on the tile's last column
    item = GalleryItem(_grey_image(tmp_path / "g.png"), [partly_left, wholly_right], highlight=[0, 1])
    png = draw_gallery([item], tmp_path / "outside.png", title="outside", thumb_size=THUMB)
    assert _pixel(png, 0, IMAGE_TOP + 15) == HIGHLIGHT_COLOUR
    assert _pixel(png, 10, IMAGE_TOP + 15) == HIGHLIGHT_COLOUR
    assert _pixel(png, THUMB - 1, IMAGE_TOP + 30) == HIGHLIGHT_COLOUR
    assert _pixel(png, THUMB + 1, IMAGE_TOP + 30) != HIGHLIGHT_COLOUR  # nothing bleeds past the tile


def test_degenerate_and_non_finite_boxes_do_not_raise(tmp_path):
    boxes = [(0.5, 0.5, -0.2, 0.1), (0.1, 0.1, 0.0, 0.0), (float("nan"), 0.1, 0.2, 0.2)]
    item = GalleryItem(_grey_image(tmp_path / "g.png"), boxes, highlight=[0, 1, 2])
    png = draw_gallery([item], tmp_path / "degenerate.png", title="degenerate", thumb_size=THUMB)
    assert _pixel(png, 40, IMAGE_TOP + 30) == HIGHLIGHT_COLOUR  # negative width: x 30..50 after ordering


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[274] = 6  # displayed rotated to portrait
    item = GalleryItem(_grey_image(tmp_path / "rotated.jpg", exif=exif), [(0.25, 0.2, 0.5, 0.6)], [0])
    png = draw_gallery([item], tmp_path / "stored.png", title="stored pixels", thumb_size=THUMB)
    assert _pixel(png, 50, 5) == LETTERBOX  # still landscape
    assert _pixel(png, 25, IMAGE_TOP + 25) == HIGHLIGHT_COLOUR


def test_unreadable_and_truncated_items_render(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not pixels")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    items = [GalleryItem(str(text), caption="text"), GalleryItem(str(tmp_path / "absent.jpg")),
             GalleryItem(str(cut), [(0.1, 0.1, 0.2, 0.2)], [0], caption="cut")]
    png = draw_gallery(items, tmp_path / "bad.png", title="bad files", columns=3, thumb_size=THUMB)
    assert _pixel(png, 1, 1) == UNREADABLE_GREY
    with Image.open(png) as grid:
        cut_tile_left = 2 * (THUMB + 2 * TILE_PADDING)
        decoded_part = (TILE_LEFT + cut_tile_left + 50, TILE_TOP + 40)
        assert grid.convert("RGB").getpixel(decoded_part) != UNREADABLE_GREY


def test_sixteen_bit_image_is_stretched_for_display(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 200).astype(np.uint16), (100, 1))  # 12 bits used of 16
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    png = draw_gallery([GalleryItem(str(path))], tmp_path / "deep_gallery.png", title="16-bit",
                       thumb_size=THUMB)
    left, right = _pixel(png, 2, IMAGE_TOP + 25), _pixel(png, THUMB - 3, IMAGE_TOP + 25)
    assert left[0] < 20 and right[0] > 235


def test_long_caption_is_cut_to_its_lines_with_an_ellipsis():
    font = ImageFont.load_default()
    lines = _caption_lines("x" * 500, 64, font)
    assert len(lines) == CAPTION_LINES and lines[-1].endswith(ELLIPSIS)
    assert all(font.getlength(line) <= 64 for line in lines)
    assert _caption_lines("short", 64, font) == ["short"]
