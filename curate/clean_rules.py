"""The rules of ``curate clean``: pure functions from one sample's facts to findings.

Each rule has a name, a level (``box`` or ``sample``), a severity and, where a safe and reversible fix
exists, the fix's name. Severity ``quarantine`` keeps the sample out of every training view; ``warn``
only reports. Thresholds come from ``recipe.CleanSection`` (named there, with their reasons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from curate import schema
from curate.recipe import CleanSection

QUARANTINE, WARN = "quarantine", "warn"
ROTATING_EXIF_ORIENTATIONS = range(2, 9)  # EXIF 274: 1 is upright; 0 and others are invalid, not turns


@dataclass(frozen=True)
class Rule:
    name: str
    level: str  # "box" or "sample"
    severity: str
    fix: str | None
    explains: str


RULES = {r.name: r for r in (
    Rule("degenerate_box", "box", QUARANTINE, "drop_box", "zero or negative width or height"),
    Rule("non_finite_box", "box", QUARANTINE, "drop_box", "a coordinate is NaN or infinite"),
    Rule("box_outside_image", "box", WARN, "clip_box", "extends beyond the image by more than the tolerance"),
    Rule("tiny_box", "box", WARN, None, "too small for any SSD default box to match"),
    Rule("duplicate_box", "box", WARN, None, "same label, overlapping another box above the IoU threshold"),
    Rule("box_covers_image", "box", WARN, None, "covers almost the whole image"),
    Rule("label_not_in_classes", "box", WARN, None, "label outside the declared class list"),
    Rule("label_whitespace", "box", WARN, "normalise_label", "leading, trailing or repeated spaces"),
    Rule("unreadable_image", "sample", QUARANTINE, None, "cannot be read as an image"),
    Rule("not_an_image", "sample", QUARANTINE, None, "hidden file or macOS AppleDouble (._*) file"),
    Rule("truncated_image", "sample", QUARANTINE, None, "the file ends before the image data does"),
    Rule("missing_image", "sample", QUARANTINE, None, "the annotation's image is not on disk"),
    Rule("import_error", "sample", QUARANTINE, None, "some boxes could not be read at import"),
    Rule("extension_mismatch", "sample", WARN, None, "content type differs from the file extension"),
    Rule("declared_size_zero", "sample", WARN, None, "the annotation declares a 0x0 image"),
    Rule("size_mismatch", "sample", WARN, None, "declared size differs from the real size; boxes fit it"),
    Rule("size_mismatch_rescale", "sample", QUARANTINE, "rescale_boxes",
         "declared size differs and the boxes only fit the declared size: they need rescaling"),
    Rule("exif_rotated", "sample", WARN, None, "EXIF orientation rotates the displayed image"),
    Rule("non_rgb_image", "sample", WARN, None, "grayscale, alpha, palette or 16-bit: converted at load"),
    Rule("duplicate_image", "sample", WARN, None, "an exact copy of an earlier sample"),
    Rule("near_duplicate_image", "sample", WARN, None, "nearly identical to an earlier sample"),
    Rule("duplicate_across_splits", "sample", QUARANTINE, None,
         "a copy sits in another split: test data leaking into training"),
    Rule("empty_annotation", "sample", WARN, None, "annotated with no boxes but not declared a negative"),
    Rule("unlabeled_image", "sample", WARN, None, "no annotation file at all"),
)}


@dataclass
class Finding:
    rule: str
    detail: str
    box_index: int | None = None  # index into ground_truth.detections for box rules


@dataclass
class SampleFacts:
    """What the rules look at; built by clean.py from the database and the image files."""

    width: int | None
    height: int | None
    tags: list[str]
    boxes: list[dict] | None  # detection dicts as stored (label, bounding_box, ...); None: unlabeled
    declared: tuple[int | None, int | None] = (None, None)
    image: object | None = None  # image_checks.ImageFacts, when the file was inspected
    duplicate_of: str | None = None  # the file this sample is an exact copy of
    near_duplicate_of: str | None = None  # the file this sample nearly copies
    split_leak: bool = False
    classes: frozenset[str] | None = None
    findings: list[Finding] = field(default_factory=list)


def box_findings(facts: SampleFacts, cfg: CleanSection) -> list[Finding]:
    out: list[Finding] = []
    w, h = facts.width, facts.height
    pixel = []
    for i, det in enumerate(facts.boxes or ()):
        rel = det.get("bounding_box")
        if rel is None or not w or not h:
            pixel.append(None)
            out += _pixel_only_box(i, det.get(schema.PIXEL_BOX))
            continue
        x0, y0, bw, bh = rel[0] * w, rel[1] * h, rel[2] * w, rel[3] * h
        pixel.append((x0, y0, x0 + bw, y0 + bh))
        out += _single_box(i, (x0, y0, bw, bh), w, h, cfg)
        label = det.get("label") or ""
        if label != " ".join(label.split()):
            out.append(Finding("label_whitespace", repr(label), i))
        if facts.classes is not None and det.get("label") not in facts.classes:
            out.append(Finding("label_not_in_classes", f"label {det.get('label')!r}", i))
    out += _duplicate_boxes(facts.boxes or [], pixel, cfg)
    return out


def _pixel_only_box(i: int, box) -> list[Finding]:
    """Annotation-only samples (no image, no size) keep pixel boxes: check what needs no size."""
    if box is None:
        return []
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        return [Finding("non_finite_box", f"box {box}", i)]
    if x1 <= x0 or y1 <= y0:
        return [Finding("degenerate_box", f"{x1 - x0:.1f}x{y1 - y0:.1f} px (x0={x0:g}, x1={x1:g})", i)]
    return []


def _single_box(i: int, xywh, w: int, h: int, cfg: CleanSection) -> list[Finding]:
    x0, y0, bw, bh = xywh
    if not all(math.isfinite(v) for v in xywh):
        return [Finding("non_finite_box", f"box {xywh}", i)]
    if bw <= 0 or bh <= 0:
        return [Finding("degenerate_box", f"{bw:.1f}x{bh:.1f} px", i)]
    found = []
    beyond = max(-x0, -y0, x0 + bw - w, y0 + bh - h)
    if beyond > cfg.outside_tolerance_pixels:
        found.append(Finding("box_outside_image", f"{beyond:.1f} px outside", i))
    relative = math.sqrt(bw * bh / (w * h))
    if min(bw, bh) < cfg.min_box_pixels or relative < cfg.min_box_relative:
        found.append(Finding("tiny_box", f"{bw:.1f}x{bh:.1f} px, sqrt(area) {relative:.4f} of image", i))
    if bw * bh / (w * h) > cfg.whole_image_fraction:
        found.append(Finding("box_covers_image", f"{bw * bh / (w * h):.3f} of the image", i))
    return found


def _duplicate_boxes(boxes: list[dict], pixel: list, cfg: CleanSection) -> list[Finding]:
    found = []
    for j in range(len(boxes)):
        for i in range(j):
            if pixel[i] is None or pixel[j] is None or boxes[i].get("label") != boxes[j].get("label"):
                continue
            iou = _iou(pixel[i], pixel[j])
            if iou > cfg.duplicate_box_iou:
                found.append(Finding("duplicate_box", f"IoU {iou:.3f} with box {i}", j))
                break
    return found


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def sample_findings(facts: SampleFacts, cfg: CleanSection) -> list[Finding]:
    out = _from_import_tags(facts)
    image = facts.image
    if image is not None:
        out += _from_image_file(image)
    out += _size_findings(facts, cfg)
    if facts.duplicate_of:
        out.append(Finding("duplicate_image", f"same bytes as {_short(facts.duplicate_of)}"))
    elif facts.near_duplicate_of:
        out.append(Finding("near_duplicate_image", f"nearly identical to {_short(facts.near_duplicate_of)}"))
    if facts.split_leak:
        out.append(Finding("duplicate_across_splits", "a copy is in another split"))
    if facts.boxes == [] and schema.TAG_NEGATIVE not in facts.tags:
        out.append(Finding("empty_annotation", "0 boxes"))
    if facts.boxes is None and schema.TAG_UNLABELED in facts.tags:
        out.append(Finding("unlabeled_image", "no annotation file"))
    return out


def _short(path: str) -> str:
    """The last two parts of a path: enough to find the file, short enough for a caption."""
    return "/".join(path.replace("\\", "/").split("/")[-2:])


def _from_import_tags(facts: SampleFacts) -> list[Finding]:
    pairs = ((schema.TAG_MISSING_IMAGE, "missing_image"), (schema.TAG_IMPORT_ERROR, "import_error"))
    return [Finding(rule, f"tagged {tag} at import") for tag, rule in pairs if tag in facts.tags]


def _from_image_file(image) -> list[Finding]:
    if image.appledouble or image.hidden:
        return [Finding("not_an_image", "AppleDouble file" if image.appledouble else "hidden file")]
    if not image.readable:
        return [Finding("unreadable_image", image.error or "unreadable")]
    out = []
    if image.truncated:
        out.append(Finding("truncated_image", "no end-of-image marker"))
    if not image.extension_matches:
        out.append(Finding("extension_mismatch", f"{image.format} content"))
    if image.exif_orientation in ROTATING_EXIF_ORIENTATIONS:
        out.append(Finding("exif_rotated", f"EXIF orientation {image.exif_orientation}"))
    if image.mode != "RGB" or (image.bit_depth or 8) > 8:
        out.append(Finding("non_rgb_image", f"mode {image.mode}, {image.bit_depth or 8}-bit"))
    return out


def _size_findings(facts: SampleFacts, cfg: CleanSection) -> list[Finding]:
    dw, dh = facts.declared
    if dw == 0 and dh == 0:
        return [Finding("declared_size_zero", "0x0")]
    if not (dw and dh and facts.width and facts.height):
        return []
    if (abs(dw - facts.width) <= cfg.size_mismatch_tolerance * facts.width
            and abs(dh - facts.height) <= cfg.size_mismatch_tolerance * facts.height):
        return []
    detail = f"declared {dw}x{dh}, real {facts.width}x{facts.height}"
    if _needs_rescale(facts, cfg):
        return [Finding("size_mismatch_rescale", detail)]
    return [Finding("size_mismatch", detail)]


def _needs_rescale(facts: SampleFacts, cfg: CleanSection) -> bool:
    """Boxes overflow the real image but fit the declared one, and both have the same aspect."""
    dw, dh = facts.declared
    same_aspect = abs(dw / dh - facts.width / facts.height) <= cfg.size_mismatch_tolerance * dw / dh
    boxes = [d["bounding_box"] for d in facts.boxes or () if d.get("bounding_box")]
    if not same_aspect or not boxes:
        return False
    right = np.array([(b[0] + b[2]) * facts.width for b in boxes])
    bottom = np.array([(b[1] + b[3]) * facts.height for b in boxes])
    tolerance = cfg.outside_tolerance_pixels
    overflow = (right > facts.width + tolerance).any() or (bottom > facts.height + tolerance).any()
    fits = (right <= dw + tolerance).all() and (bottom <= dh + tolerance).all()
    return bool(overflow and fits)


def all_findings(facts: SampleFacts, cfg: CleanSection) -> list[Finding]:
    """Box and sample findings; boxes outside an image whose boxes need rescaling are one finding."""
    samples = sample_findings(facts, cfg)
    boxes = box_findings(facts, cfg)
    if any(f.rule == "size_mismatch_rescale" for f in samples):
        boxes = [f for f in boxes if f.rule != "box_outside_image"]
    return boxes + samples
