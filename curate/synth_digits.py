"""Synthetic detection sets for quick experiments, written as Pascal VOC folders (``curate import`` reads them).

* **MNIST-detection** (seed 003): real MNIST digits, scaled to 15-100 px, pasted on 300x300 black canvases,
  1-20 per image with few overlaps. A box is the tight box of the digit's *ink* after scaling (pixels at or
  above ``INK_LEVEL``), not the whole 28x28 cell, which carries a blank margin of about 4/28 on each side.
* **CIFAR-like** (seed 000): 32x32 coloured "object" tiles pasted on noisy backgrounds. CIFAR itself cannot
  be downloaded on our machines, so the 10 classes are procedural shapes with textures (``CIFAR_LIKE_CLASSES``);
  a box is the whole tile, as when CIFAR images are pasted.

MNIST files are read by curate/mnist.py (``load_mnist``: idx files or the CSV of ``../shared/data/mnist``;
``download_mnist`` fetches the originals when online).

Everything is deterministic for a seed: image ``i`` depends only on ``(seed, i)``, so asking for more images
keeps the first ones (their train/val/test assignment is drawn for the whole set, so that may change).
``iter_*`` yield one record per written image (wrap them in a progress bar);
``write_*`` run them to the end. VOC coordinates are 1-based (curate/boxes.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw

from curate.boxes import PixelConvention
from curate.formats.records import BoxRecord
from curate.formats.voc_write import write_voc_xml
from curate.errors import CurateError

log = logging.getLogger(__name__)

INK_LEVEL = 32  # of 255: a pixel this bright is ink; the fainter anti-aliasing halo is not boxed
JPEG_QUALITY = 95  # white strokes on black ring visibly at lower qualities
VOC_FOLDER = "VOC"  # the <folder> element; fixed, so the XML does not depend on where it is written
DEFAULT_SPLIT = (0.8, 0.1, 0.1)  # train, val, test fractions of the images
MAX_PLACEMENT_TRIES = 50  # new size and position per try; a digit that never fits is dropped
MAX_COVERED = 0.3  # no box may have more than this fraction of its area inside another: IoU alone lets a
#                    15 px digit sit inside a 100 px one (IoU 0.02)
CIFAR_SIDE = 32  # px, a CIFAR image; tiles are drawn at this size then scaled, as upscaled CIFAR looks
CIFAR_LIKE_CLASSES = ("disc", "ring", "square", "frame", "triangle", "diamond", "cross", "stripes",
                      "checker", "star")


# --- writing VOC folders -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthImage:
    """One written image: its stem (``JPEGImages/STEM.jpg``, ``Annotations/STEM.xml``), split and boxes."""

    stem: str
    split: str
    boxes: tuple[BoxRecord, ...]


def split_assignment(n_images: int, fractions: Sequence[float], seed: int) -> list[str]:
    """``train``/``val``/``test`` for each image index: counts rounded from ``fractions``, order shuffled."""
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise CurateError(f"split fractions {tuple(fractions)}: give three non-negative (train, val, test) "
                          "fractions that sum to 1")
    n_train = round(n_images * fractions[0])
    n_val = min(round(n_images * fractions[1]), n_images - n_train)
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * (n_images - n_train - n_val)
    order = np.random.default_rng([seed, 1]).permutation(n_images)  # stream 1: splits; images use stream 0
    return [names[k] for k in order]


def _voc_images(out_dir: Path, splits: list[str], render) -> Iterator[SynthImage]:
    """Render image ``i`` with ``render(i) -> (PIL image, boxes)``, write it; ImageSets once all are done."""
    annotations, images, sets = out_dir / "Annotations", out_dir / "JPEGImages", out_dir / "ImageSets" / "Main"
    wanted = {f"{i:06d}" for i in range(len(splits))}
    stale = sorted(p.name for p in annotations.glob("*.xml") if p.stem not in wanted)
    if stale:  # they would be imported with the new images
        raise CurateError(f"{out_dir}: holds {len(stale)} annotations this run would not write (e.g. {stale[0]}); "
                          "fix: write to an empty folder")
    for folder in (annotations, images, sets):
        folder.mkdir(parents=True, exist_ok=True)
    for i, split in enumerate(splits):
        image, boxes = render(i)
        stem = f"{i:06d}"
        image.save(images / f"{stem}.jpg", quality=JPEG_QUALITY)
        write_voc_xml(annotations / f"{stem}.xml", f"{stem}.jpg", image.width, image.height, 3, boxes,
                      PixelConvention.VOC_ONE_BASED, folder=VOC_FOLDER)
        yield SynthImage(stem, split, tuple(boxes))
    stems = {name: [f"{i:06d}" for i, s in enumerate(splits) if s == name] for name in ("train", "val", "test")}
    stems["trainval"] = sorted(stems["train"] + stems["val"])
    for name, listed in stems.items():
        (sets / f"{name}.txt").write_text("".join(f"{s}\n" for s in listed))


def _box_record(label: str, box: Sequence[int]) -> BoxRecord:
    return BoxRecord(label, tuple(float(v) for v in box), {"difficult": False, "truncated": False,
                                                          "pose": "Unspecified"})


# --- MNIST-detection ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlacedDigit:
    """A digit on a canvas: ``cell`` is the scaled 28x28 square, ``box`` its tight ink box (edges xyxy)."""

    label: str
    index: int  # into the digit pool
    cell: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


def ink_box(pixels: np.ndarray, level: int = INK_LEVEL) -> tuple[int, int, int, int] | None:
    """Tight box (edges xyxy) of the pixels at or above ``level``; None when there are none."""
    rows, cols = np.flatnonzero((pixels >= level).any(axis=1)), np.flatnonzero((pixels >= level).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlap(a: Sequence[int], b: Sequence[int]) -> tuple[float, float]:
    """``(IoU, intersection over the smaller area)`` of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0, 0.0
    inter = w * h
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter), inter / min(area_a, area_b)


def render_digit_canvas(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, *, canvas: int,
                        digits_per_image: tuple[int, int], digit_size: tuple[int, int],
                        max_overlap_iou: float, max_covered: float = MAX_COVERED
                        ) -> tuple[np.ndarray, list[PlacedDigit]]:
    """A ``canvas`` x ``canvas`` uint8 image of scaled digits and where each went (before JPEG encoding).

    Each digit gets up to MAX_PLACEMENT_TRIES random sizes and positions; a placement whose ink box has IoU
    above ``max_overlap_iou`` with a placed one, or covers or is covered by more than ``max_covered`` of
    either's area, is rejected. Digits are combined by maximum, so a cell's blank margin never hides ink.
    A digit without ink at ``INK_LEVEL`` is skipped (it could not be boxed).
    """
    pixels = np.zeros((canvas, canvas), np.uint8)
    placed: list[PlacedDigit] = []
    lo, hi = digit_size[0], min(digit_size[1], canvas)
    for _ in range(int(rng.integers(digits_per_image[0], digits_per_image[1] + 1))):
        index = int(rng.integers(len(digits)))
        for _try in range(MAX_PLACEMENT_TRIES):
            side = int(rng.integers(lo, hi + 1))
            x, y = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
            scaled = np.asarray(Image.fromarray(digits[index]).resize((side, side), Image.Resampling.BILINEAR))
            ink = ink_box(scaled)
            if ink is None:
                log.debug("digit %d has no ink at level %d: skipped", index, INK_LEVEL)
                break
            box = (ink[0] + x, ink[1] + y, ink[2] + x, ink[3] + y)
            if all(iou <= max_overlap_iou and covered <= max_covered
                   for iou, covered in (_overlap(box, p.box) for p in placed)):
                region = pixels[y:y + side, x:x + side]
                np.maximum(region, scaled, out=region)
                placed.append(PlacedDigit(str(int(labels[index])), index, (x, y, x + side, y + side), box))
                break
    return pixels, placed


def iter_mnist_detection(out_dir: str | Path, n_images: int, *, digits: np.ndarray, labels: np.ndarray,
                         canvas: int = 300, digits_per_image: tuple[int, int] = (1, 20),
                         digit_size: tuple[int, int] = (15, 100), max_overlap_iou: float = 0.1,
                         max_covered: float = MAX_COVERED, seed: int = 0,
                         split_fractions: Sequence[float] = DEFAULT_SPLIT) -> Iterator[SynthImage]:
    """Write MNIST-detection images one at a time (see write_mnist_detection); yield each as it is written."""
    digits, labels = np.asarray(digits, np.uint8), np.asarray(labels)
    if digits.ndim != 3 or len(digits) == 0 or len(digits) != len(labels):
        raise CurateError(f"digits {digits.shape} and labels {labels.shape}: pass N>0 2-D digits and N labels")
    if not 1 <= digit_size[0] <= digit_size[1] or digit_size[0] > canvas:
        raise CurateError(f"digit_size {digit_size}: need 1 <= min <= max, min <= canvas {canvas}")
    if not 0 <= digits_per_image[0] <= digits_per_image[1]:
        raise CurateError(f"digits_per_image {digits_per_image}: need 0 <= min <= max")
    splits = split_assignment(n_images, split_fractions, seed)

    def render(i: int):
        rng = np.random.default_rng([seed, 0, i])
        pixels, placed = render_digit_canvas(rng, digits, labels, canvas=canvas,
                                             digits_per_image=digits_per_image, digit_size=digit_size,
                                             max_overlap_iou=max_overlap_iou, max_covered=max_covered)
        return Image.fromarray(pixels).convert("RGB"), [_box_record(p.label, p.box) for p in placed]

    yield from _voc_images(Path(out_dir), splits, render)


def write_mnist_detection(out_dir: str | Path, n_images: int, *, digits: np.ndarray, labels: np.ndarray,
                          canvas: int = 300, digits_per_image: tuple[int, int] = (1, 20),
                          digit_size: tuple[int, int] = (15, 100), max_overlap_iou: float = 0.1,
                          max_covered: float = MAX_COVERED, seed: int = 0,
                          split_fractions: Sequence[float] = DEFAULT_SPLIT) -> Path:
    """Seed 003's MNIST-detection as a Pascal VOC folder; classes ``'0'``..``'9'``.

    ``canvas`` px square black images holding ``digits_per_image`` (inclusive range) digits drawn from
    ``digits``/``labels`` (e.g. :func:`load_mnist`), each scaled to a square of ``digit_size`` px (inclusive)
    and boxed by its ink. Overlap rule in :func:`render_digit_canvas`. Images are split by
    ``split_fractions`` (train, val, test) into ``ImageSets/Main``. Returns ``out_dir``.
    """
    for _ in iter_mnist_detection(out_dir, n_images, digits=digits, labels=labels, canvas=canvas,
                                  digits_per_image=digits_per_image, digit_size=digit_size,
                                  max_overlap_iou=max_overlap_iou, max_covered=max_covered, seed=seed,
                                  split_fractions=split_fractions):
        pass
    return Path(out_dir)


# --- CIFAR-like --------------------------------------------------------------------------------------------

def _noisy_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth colour blotches (bilinear-upscaled coarse noise) plus pixel noise: no edges that look like tiles."""
    coarse = rng.integers(30, 226, size=(height // 24 + 2, width // 24 + 2, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
    return np.clip(smooth + rng.normal(0, 12, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _star(c: float, r: float) -> list[tuple[float, float]]:
    return [(c + (r if k % 2 == 0 else r * 0.45) * math.sin(k * math.pi / 5),
             c - (r if k % 2 == 0 else r * 0.45) * math.cos(k * math.pi / 5)) for k in range(10)]


def render_cifar_like_tile(rng: np.random.Generator, class_index: int) -> Image.Image:
    """A 32x32 tile: class ``CIFAR_LIKE_CLASSES[class_index]`` in a random colour on its own backdrop."""
    backdrop = tuple(int(v) for v in rng.integers(0, 256, size=3))
    color = tuple(int((b + v) % 256) for b, v in zip(backdrop, rng.integers(80, 177, size=3)))  # contrast
    tile = Image.fromarray(np.clip(np.array(backdrop) + rng.normal(0, 10, (CIFAR_SIDE, CIFAR_SIDE, 3)), 0, 255)
                           .astype(np.uint8))
    draw, s, m = ImageDraw.Draw(tile), CIFAR_SIDE, 4  # side, margin
    c, r = s / 2, s / 2 - m
    name = CIFAR_LIKE_CLASSES[class_index]
    if name == "disc":
        draw.ellipse((m, m, s - m, s - m), fill=color)
    elif name == "ring":
        draw.ellipse((m, m, s - m, s - m), outline=color, width=4)
    elif name == "square":
        draw.rectangle((m, m, s - m, s - m), fill=color)
    elif name == "frame":
        draw.rectangle((m, m, s - m, s - m), outline=color, width=4)
    elif name == "stripes":
        for k in range(m, s - m, 6):
            draw.rectangle((m, k, s - m, k + 2), fill=color)
    elif name == "checker":
        for k in range(m, s - m, 6):
            for j in range(m + (k // 6 % 2) * 6, s - m, 12):
                draw.rectangle((j, k, j + 5, k + 5), fill=color)
    elif name == "triangle":
        draw.polygon([(c, m), (s - m, s - m), (m, s - m)], fill=color)
    elif name == "diamond":
        draw.polygon([(c, m), (s - m, c), (c, s - m), (m, c)], fill=color)
    elif name == "cross":
        draw.rectangle((c - 4, m, c + 4, s - m), fill=color)
        draw.rectangle((m, c - 4, s - m, c + 4), fill=color)
    else:
        draw.polygon(_star(c, r), fill=color)
    return tile


def iter_cifar_like_detection(out_dir: str | Path, n_images: int, *, canvas: tuple[int, int] = (128, 128),
                              objects_per_image: tuple[int, int] = (1, 4), tile_size: tuple[int, int] = (24, 48),
                              seed: int = 0, split_fractions: Sequence[float] = DEFAULT_SPLIT
                              ) -> Iterator[SynthImage]:
    """Write CIFAR-like images one at a time (see write_cifar_like_detection); yield each as it is written."""
    width, height = canvas
    if not 1 <= tile_size[0] <= tile_size[1] or tile_size[0] > min(width, height):
        raise CurateError(f"tile_size {tile_size}: need 1 <= min <= max, min <= canvas {canvas}")
    if not 0 <= objects_per_image[0] <= objects_per_image[1]:
        raise CurateError(f"objects_per_image {objects_per_image}: need 0 <= min <= max")
    splits = split_assignment(n_images, split_fractions, seed)

    def render(i: int):
        rng = np.random.default_rng([seed, 0, i])
        image = Image.fromarray(_noisy_background(rng, width, height))
        boxes: list[BoxRecord] = []
        for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
            class_index = int(rng.integers(len(CIFAR_LIKE_CLASSES)))
            for _try in range(MAX_PLACEMENT_TRIES):  # tiles never overlap, as pasted photos would hide each other
                side = int(rng.integers(tile_size[0], min(tile_size[1], width, height) + 1))
                x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
                box = (x, y, x + side, y + side)
                if all(_overlap(box, b.box)[0] == 0.0 for b in boxes):
                    tile = render_cifar_like_tile(rng, class_index)
                    image.paste(tile.resize((side, side), Image.Resampling.BILINEAR), (x, y))
                    boxes.append(_box_record(CIFAR_LIKE_CLASSES[class_index], box))
                    break
        return image, boxes

    yield from _voc_images(Path(out_dir), splits, render)


def write_cifar_like_detection(out_dir: str | Path, n_images: int, *, canvas: tuple[int, int] = (128, 128),
                               objects_per_image: tuple[int, int] = (1, 4), tile_size: tuple[int, int] = (24, 48),
                               seed: int = 0, split_fractions: Sequence[float] = DEFAULT_SPLIT) -> Path:
    """Seed 000's setting as a Pascal VOC folder: CIFAR-like tiles on noisy ``canvas`` (width, height) images.

    ``objects_per_image`` (inclusive) non-overlapping tiles of ``tile_size`` px (inclusive), each boxed
    whole, classes ``CIFAR_LIKE_CLASSES``. Procedural because CIFAR cannot be downloaded here. Returns ``out_dir``.
    """
    for _ in iter_cifar_like_detection(out_dir, n_images, canvas=canvas, objects_per_image=objects_per_image,
                                       tile_size=tile_size, seed=seed, split_fractions=split_fractions):
        pass
    return Path(out_dir)
