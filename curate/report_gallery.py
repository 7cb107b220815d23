"""Gallery tiles for the HTML report: the most confident false positives and the largest misses.

Reads: the evaluated dataset named in eval.json, its ``predictions`` and ``ground_truth`` boxes with
their ``<eval_key>`` verdicts (written by ``curate evaluate``) and the image files. Writes nothing.

A tile is one JPEG: on the left the whole image with every ground-truth box (green) and every
prediction scoring at least ``CONTEXT_SCORE`` (blue), the failing box thick on top (red: a false
positive; orange: a missed object); on the right a zoom on the failing box, so a small logo in a big
photo can still be judged. Boxes are FiftyOne relative ``[x, y, w, h]`` of the stored pixels (no EXIF
rotation: see curate/gallery.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from curate import schema
from curate.gallery import load_stored_pixels

PANEL = 240  # px, each half of a tile
ZOOM_CONTEXT = 1.0  # the zoom shows the failing box plus this many box-sizes of context around it
ZOOM_MIN_SIDE = 0.08  # relative: never zoom closer than this share of the image
DECODE_SIDE = round(PANEL / ZOOM_MIN_SIDE)  # px: a JPEG is decoded at least this big, so the closest zoom is sharp
MAX_PER_IMAGE = 2  # failures shown per image: one bad image must not fill the whole gallery
CONTEXT_SCORE = 0.3  # predictions below this are noise next to the failure; not drawn
JPEG_QUALITY = 85
LABEL_FONT_PX = 11
GT_COLOUR = (0, 200, 0)
PREDICTION_COLOUR = (30, 120, 255)
FALSE_POSITIVE_COLOUR = (255, 0, 0)
MISSED_COLOUR = (255, 140, 0)
LETTERBOX = (40, 40, 40)
FAILURE_WIDTH = 3
CONTEXT_WIDTH = 1


@dataclass(frozen=True)
class Box:
    label: str
    xywh: tuple[float, float, float, float]  # relative
    score: float | None = None
    iou: float | None = None  # the evaluation's IoU with the matched box, when there is one


@dataclass(frozen=True)
class Failure:
    kind: str  # "fp" or "fn"
    filepath: str
    box: Box
    ground_truth: list[Box] = field(default_factory=list)
    predictions: list[Box] = field(default_factory=list)
    nearest: Box | None = None  # a miss: the prediction overlapping it most (iou = that overlap), if any


@dataclass(frozen=True)
class Tile:
    failure: Failure
    jpeg: bytes


def evaluated_view(dataset, *, split: str, eval_key: str):
    """The samples the evaluation scored: its split's usable samples that carry its per-sample counts."""
    from curate.evaluate import split_view

    return split_view(dataset, split).exists(f"{eval_key}_fp")


def worst_false_positives(view, *, eval_key: str, pred_field: str, count: int) -> list[Failure]:
    """The ``count`` false positives with the highest confidence (at most MAX_PER_IMAGE per image)."""
    found = _boxes_with_verdict(view, pred_field, eval_key, "fp")
    found.sort(key=lambda item: -(item[1].score or 0.0))
    return _with_context(view, _spread(found, count), "fp", pred_field)


def largest_misses(view, *, eval_key: str, pred_field: str, count: int) -> list[Failure]:
    """The ``count`` missed ground-truth boxes with the largest area (the least excusable misses),
    at most MAX_PER_IMAGE per image."""
    found = _boxes_with_verdict(view, schema.GROUND_TRUTH, eval_key, "fn")
    found.sort(key=lambda item: -(item[1].xywh[2] * item[1].xywh[3]))
    return _with_context(view, _spread(found, count), "fn", pred_field)


def _spread(ranked: list[tuple[str, Box]], count: int) -> list[tuple[str, Box]]:
    """The first ``count`` of ``ranked``, skipping an image's failures past its MAX_PER_IMAGE-th."""
    shown: dict[str, int] = {}
    chosen = []
    for sample_id, box in ranked:
        if len(chosen) == count:
            break
        if shown.get(sample_id, 0) < MAX_PER_IMAGE:
            shown[sample_id] = shown.get(sample_id, 0) + 1
            chosen.append((sample_id, box))
    return chosen


def _boxes_with_verdict(view, field_name: str, eval_key: str, verdict: str) -> list[tuple[str, Box]]:
    """(sample id, box) for every box of ``field_name`` whose ``eval_key`` is ``verdict``: one query."""
    prefix = f"{field_name}.detections"
    columns = ["id", f"{prefix}.{eval_key}", f"{prefix}.label", f"{prefix}.bounding_box",
               f"{prefix}.confidence", f"{prefix}.{eval_key}_iou"]
    found = []
    for sample_id, verdicts, labels, boxes, scores, ious in zip(*view.values(columns)):
        for v, label, xywh, score, iou in zip(verdicts or (), labels, boxes, scores, ious):
            if v == verdict and xywh:
                found.append((sample_id, Box(label, tuple(xywh), score, iou)))
    return found


def _with_context(view, chosen: list[tuple[str, Box]], kind: str, pred_field: str) -> list[Failure]:
    """Attach each failing box's image and the other boxes of its sample (one query for all)."""
    if not chosen:
        return []
    ids = list(dict.fromkeys(sample_id for sample_id, _ in chosen))
    columns = ["id", "filepath", f"{schema.GROUND_TRUTH}.detections", f"{pred_field}.detections"]
    context = {sample_id: (path, gt or [], preds or [])
               for sample_id, path, gt, preds in zip(*view.select(ids).values(columns))}
    failures = []
    for sample_id, box in chosen:
        path, gt, preds = context[sample_id]
        predicted = [Box(d.label, tuple(d.bounding_box), d.confidence) for d in preds if d.bounding_box]
        failures.append(Failure(
            kind, path, box,
            ground_truth=[Box(d.label, tuple(d.bounding_box)) for d in gt if d.bounding_box],
            predictions=[p for p in predicted if (p.score or 0.0) >= CONTEXT_SCORE],
            nearest=_nearest(box, predicted) if kind == "fn" else None))
    return failures


def _nearest(box: Box, predicted: list[Box]) -> Box | None:
    """The prediction overlapping ``box`` most, its IoU in ``iou``: tells a wrong class from a miss."""
    scored = [(relative_iou(box.xywh, p.xywh), p) for p in predicted]
    best = max(scored, key=lambda item: item[0], default=(0.0, None))
    return Box(best[1].label, best[1].xywh, best[1].score, best[0]) if best[0] > 0 else None


def relative_iou(a, b) -> float:
    """IoU of two relative [x, y, w, h] boxes of the same image (aspect does not change an IoU)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def render_tile(failure: Failure) -> bytes:
    """The failure as a JPEG: whole image with boxes | zoom on the failing box."""
    tile = Image.new("RGB", (2 * PANEL, PANEL), LETTERBOX)
    image, _ = load_stored_pixels(failure.filepath, DECODE_SIDE)
    if image is None:
        ImageDraw.Draw(tile).text((8, 8), "image unreadable", fill=(255, 255, 255), font=_font())
    else:
        tile.paste(_panel(image, failure, (0.0, 0.0, 1.0, 1.0)), (0, 0))
        tile.paste(_panel(image, failure, _zoom_window(failure.box.xywh)), (PANEL, 0))
    buffer = io.BytesIO()
    tile.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps thin lines their colour
    return buffer.getvalue()


def _zoom_window(xywh) -> tuple[float, float, float, float]:
    """Relative (x0, y0, x1, y1) around the box, square-ish, kept inside the image."""
    x, y, w, h = xywh
    side_w = max(w * (1 + 2 * ZOOM_CONTEXT), ZOOM_MIN_SIDE)
    side_h = max(h * (1 + 2 * ZOOM_CONTEXT), ZOOM_MIN_SIDE)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = min(max(cx - side_w / 2, 0.0), max(1.0 - side_w, 0.0)), min(max(cy - side_h / 2, 0.0),
                                                                         max(1.0 - side_h, 0.0))
    return x0, y0, min(x0 + side_w, 1.0), min(y0 + side_h, 1.0)


def _panel(image: Image.Image, failure: Failure, window) -> Image.Image:
    """The ``window`` of the image fitted in a PANEL square, boxes drawn at that scale."""
    x0, y0, x1, y1 = window
    crop = image.crop((round(x0 * image.width), round(y0 * image.height),
                       max(round(x1 * image.width), round(x0 * image.width) + 1),
                       max(round(y1 * image.height), round(y0 * image.height) + 1)))
    scale = min(PANEL / crop.width, PANEL / crop.height)
    shown = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                        Image.Resampling.BILINEAR)
    panel = Image.new("RGB", (PANEL, PANEL), LETTERBOX)
    offset = ((PANEL - shown.width) // 2, (PANEL - shown.height) // 2)
    panel.paste(shown, offset)

    def to_panel(box: Box) -> tuple[float, float, float, float]:
        bx, by, bw, bh = box.xywh
        sx, sy = shown.width / (x1 - x0), shown.height / (y1 - y0)
        return (offset[0] + (bx - x0) * sx, offset[1] + (by - y0) * sy,
                offset[0] + (bx + bw - x0) * sx, offset[1] + (by + bh - y0) * sy)

    draw = ImageDraw.Draw(panel)
    for box in failure.ground_truth:
        _box(draw, to_panel(box), GT_COLOUR, CONTEXT_WIDTH, None)
    for box in failure.predictions:
        _box(draw, to_panel(box), PREDICTION_COLOUR, CONTEXT_WIDTH, None)
    colour = FALSE_POSITIVE_COLOUR if failure.kind == "fp" else MISSED_COLOUR
    _box(draw, to_panel(failure.box), colour, FAILURE_WIDTH, _caption(failure.box))
    return panel


def _caption(box: Box) -> str:
    return f"{box.label} {box.score:.2f}" if box.score is not None else box.label


def _box(draw: ImageDraw.ImageDraw, corners, colour, width: int, text: str | None) -> None:
    x0, y0, x1, y1 = (min(max(v, -width), PANEL + width) for v in corners)  # off-panel edges on the border
    draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=width)
    if text:
        font = _font()
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tx, ty = max(0, min(x0, PANEL - (right - left) - 4)), max(0, y0 - (bottom - top) - 4)
        draw.rectangle((tx, ty, tx + right - left + 4, ty + bottom - top + 4), fill=colour)
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=(0, 0, 0), font=font)


def _font():
    return ImageFont.load_default(size=LABEL_FONT_PX)


def gallery_tiles(dataset, *, split: str, eval_key: str, pred_field: str, count: int) -> dict[str, list[Tile]]:
    """{"fp": tiles of the most confident false positives, "fn": tiles of the largest misses}."""
    view = evaluated_view(dataset, split=split, eval_key=eval_key)
    found = {"fp": worst_false_positives(view, eval_key=eval_key, pred_field=pred_field, count=count),
             "fn": largest_misses(view, eval_key=eval_key, pred_field=pred_field, count=count)}
    return {kind: [Tile(f, render_tile(f)) for f in failures] for kind, failures in found.items()}
