"""Synthetic detection data written in real annotation layouts, so it goes through ``curate import``.

Brand marks (a coloured shape with a letter) pasted on textured backgrounds; boxes are the marks'
exact extents. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from curate.boxes import PixelConvention
from curate.formats.records import BoxRecord
from curate.formats.voc_write import write_voc_xml

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Brand:
    name: str
    shape: str  # "circle", "square", "triangle", "diamond", "bar"
    color: tuple[int, int, int]
    aspect: float  # width / height of the mark


BRANDS = (
    Brand("acme", "circle", (220, 40, 40), 1.0),
    Brand("bolt", "triangle", (250, 200, 0), 1.0),
    Brand("cobalt", "square", (30, 80, 200), 1.0),
    Brand("delta", "diamond", (20, 160, 90), 0.8),
    Brand("echo", "bar", (140, 40, 170), 2.5),
)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    base = rng.integers(40, 215, size=3)
    ramp = np.linspace(-40, 40, width)[None, :, None] * rng.choice([-1, 1])
    noise = rng.normal(0, 18, size=(height // 8 + 1, width // 8 + 1, 3))
    noise = np.kron(noise, np.ones((8, 8, 1)))[:height, :width]
    pixels = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1.5))


def _draw_mark(draw: ImageDraw.ImageDraw, brand: Brand, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if brand.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=brand.color)
    elif brand.shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=brand.color)
    elif brand.shape == "diamond":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.polygon([(cx, y0), (x1 - 1, cy), (cx, y1 - 1), (x0, cy)], fill=brand.color)
    else:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=brand.color)
    inset = max(2, (y1 - y0) // 4)
    draw.rectangle((x0 + inset, y0 + inset, x0 + 2 * inset, y1 - inset), fill=(255, 255, 255))


def _place(rng: random.Random, width: int, height: int, aspect: float, taken: list) -> tuple | None:
    for _ in range(20):
        h = rng.randint(max(12, height // 12), max(13, height // 3))
        w = min(int(h * aspect), width - 2)
        x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
        box = (x0, y0, x0 + w, y0 + h)
        if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in taken):
            return box
    return None


def render_image(seed: int, width: int, height: int, max_boxes: int,
                 brands=BRANDS) -> tuple[Image.Image, list[BoxRecord]]:
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    image = _background(nprng, width, height)
    draw = ImageDraw.Draw(image)
    boxes: list[BoxRecord] = []
    for _ in range(rng.randint(0, max_boxes)):
        brand = rng.choice(brands)
        box = _place(rng, width, height, brand.aspect, [b.box for b in boxes])
        if box:
            _draw_mark(draw, brand, box)
            boxes.append(BoxRecord(brand.name, tuple(float(v) for v in box),
                                   {"difficult": False, "truncated": False, "pose": "Unspecified"}))
    return image, boxes


def write_labelimg_folder(out_dir: Path, n_images: int, *, seed: int = 0, width: int = 320,
                          height: int = 240, max_boxes: int = 4) -> Path:
    """``n_images`` JPEGs with LabelImg XML beside them (0-based edges)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image, boxes = render_image(seed * 1_000_003 + i, width, height, max_boxes)
        name = f"img_{i:05d}.jpg"
        image.save(out_dir / name, quality=JPEG_QUALITY)
        write_voc_xml(out_dir / f"img_{i:05d}.xml", name, width, height, 3, boxes,
                      PixelConvention.EDGES_ZERO_BASED, folder=out_dir.name)
    return out_dir


def write_voc_folder(out_dir: Path, n_images: int, *, seed: int = 0, width: int = 640, height: int = 480,
                     max_boxes: int = 5, min_boxes: int = 1) -> Path:
    """A Pascal VOC layout (1-based coordinates) with an ImageSets/Main train/val split."""
    annotations, images = out_dir / "Annotations", out_dir / "JPEGImages"
    sets = out_dir / "ImageSets" / "Main"
    for folder in (annotations, images, sets):
        folder.mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n_images):
        boxes: list[BoxRecord] = []
        attempt = 0
        while len(boxes) < min_boxes:
            image, boxes = render_image(seed * 1_000_003 + i + attempt * 7_919, width, height, max_boxes)
            attempt += 1
        stem = f"{i:06d}"
        image.save(images / f"{stem}.jpg", quality=JPEG_QUALITY)
        write_voc_xml(annotations / f"{stem}.xml", f"{stem}.jpg", width, height, 3, boxes,
                      PixelConvention.VOC_ONE_BASED, folder="VOC")
        stems.append(stem)
    cut = int(len(stems) * 0.8)
    (sets / "train.txt").write_text("".join(f"{s}\n" for s in stems[:cut]))
    (sets / "val.txt").write_text("".join(f"{s}\n" for s in stems[cut:]))
    (sets / "trainval.txt").write_text("".join(f"{s}\n" for s in stems))
    return out_dir


DEFECT_KINDS = ("degenerate_box", "box_outside", "png_as_jpg", "truncated_jpeg")


def add_defects(folder: Path, *, every: int = 50, seed: int = 0) -> dict[str, int]:
    """Damage one LabelImg image in ``every`` the way real folders are damaged (what `curate clean`
    must find): a zero-width box, a box running off the image, a PNG saved as .jpg, a truncated JPEG."""
    rng = random.Random(seed)
    counts = dict.fromkeys(DEFECT_KINDS, 0)
    stems = sorted(p.with_suffix("") for p in folder.glob("*.xml"))
    for stem in stems[::every]:
        kind = rng.choice(DEFECT_KINDS)
        counts[kind] += 1
        xml, jpg = stem.with_suffix(".xml"), stem.with_suffix(".jpg")
        if kind in ("degenerate_box", "box_outside"):
            x0, x1 = (5, 5) if kind == "degenerate_box" else (jpg_width(jpg) - 20, jpg_width(jpg) + 40)
            xml.write_text(xml.read_text().replace(
                "</annotation>", f"<object><name>{BRANDS[0].name}</name><bndbox><xmin>{x0}</xmin>"
                f"<ymin>5</ymin><xmax>{x1}</xmax><ymax>30</ymax></bndbox></object></annotation>"))
        elif kind == "png_as_jpg":
            with Image.open(jpg) as image:
                image.load()
            image.save(jpg, format="PNG")
        else:
            data = jpg.read_bytes()
            jpg.write_bytes(data[: len(data) * 2 // 3])
    return counts


def jpg_width(path: Path) -> int:
    with Image.open(path) as image:
        return image.size[0]
