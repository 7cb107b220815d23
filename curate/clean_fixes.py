"""The marks ``curate clean`` leaves on a sample document, and its safe, reversible fixes.

Fixes (``--fix``): ``drop_box`` (degenerate / non-finite boxes carry no area to learn), ``clip_box``
(clip to the image), ``rescale_boxes`` (boxes drawn on the declared size: multiply by real / declared),
``normalise_label`` (trim and collapse spaces). The ground truth before the first change is kept in
``clean_backup``; ``curate clean --undo`` restores it.
"""

from __future__ import annotations

import copy

from curate import schema
from curate.clean_rules import QUARANTINE, RULES, SampleFacts

SAMPLE_TAGS = (schema.TAG_QUARANTINE, schema.TAG_HAS_EXCLUDED_CLASS)
BOX_EXCLUDED_TAG = schema.BOX_TAG_EXCLUDED_CLASS


def _is_clean_tag(tag: str) -> bool:
    return tag.startswith(schema.ISSUE_TAG_PREFIX) or tag == BOX_EXCLUDED_TAG


def ground_truth_dicts(doc) -> list[dict]:
    """The ground-truth detection dicts of a raw sample document (empty when none)."""
    return (doc.get(schema.GROUND_TRUTH) or {}).get("detections") or []


def strip_clean_marks(doc: dict) -> None:
    """Remove marks of an earlier run from the in-memory document (fixes already applied stay)."""
    for det in ground_truth_dicts(doc):
        det["tags"] = [t for t in det.get("tags", []) if not _is_clean_tag(t)]
        det.pop(schema.CLEAN_FINDINGS, None)


def _backup(doc: dict) -> None:
    if not doc.get(schema.CLEAN_BACKUP):
        doc[schema.CLEAN_BACKUP] = {"ground_truth": copy.deepcopy(doc.get(schema.GROUND_TRUTH))}


def apply_fixes(doc: dict, sample: SampleFacts, counts: dict[str, int]) -> bool:
    """Apply the fixes the findings allow; True when the ground truth changed."""
    fixes = [(f.box_index, RULES[f.rule].fix) for f in sample.findings if RULES[f.rule].fix]
    if not fixes:
        return False
    _backup(doc)
    detections = ground_truth_dicts(doc)
    if any(fix == "rescale_boxes" for _, fix in fixes):
        scale_x = sample.width / sample.declared[0]
        scale_y = sample.height / sample.declared[1]
        for det in detections:
            x, y, w, h = det["bounding_box"]
            det["bounding_box"] = [x * scale_x, y * scale_y, w * scale_x, h * scale_y]
        counts["rescale_boxes"] = counts.get("rescale_boxes", 0) + 1
    for index, fix in fixes:
        if fix == "clip_box":
            detections[index]["bounding_box"] = _clip(detections[index]["bounding_box"])
        elif fix == "normalise_label":
            detections[index]["label"] = " ".join(detections[index]["label"].split())
        if fix != "rescale_boxes":
            counts[fix] = counts.get(fix, 0) + 1
    dropped = {i for i, fix in fixes if fix == "drop_box"}
    doc[schema.GROUND_TRUTH]["detections"] = [d for i, d in enumerate(detections) if i not in dropped]
    return True


def _clip(box: list[float]) -> list[float]:
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(1.0, box[0] + box[2]), min(1.0, box[1] + box[3])
    return [x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)]


def marks_update(doc: dict, sample: SampleFacts, kept: set[str] | None) -> dict:
    """The MongoDB update that writes this run's findings (and fixed ground truth) on the sample."""
    detections = ground_truth_dicts(doc)
    by_box: dict[int, list] = {}
    for finding in sample.findings:
        if finding.box_index is not None:
            by_box.setdefault(finding.box_index, []).append(finding)
    excluded = [i for i, d in enumerate(detections) if kept is not None and d.get("label") not in kept]
    values: dict = {"tags": _sample_tags(doc, sample, bool(excluded)),
                    schema.CLEAN_FINDINGS: [f"{f.rule}: {f.detail}" for f in sample.findings] or None}
    if by_box or excluded or doc.get(schema.CLEAN_BACKUP):
        _backup(doc)
        for i, findings in by_box.items():
            detections[i]["tags"] = detections[i].get("tags", []) + sorted(
                {schema.ISSUE_TAG_PREFIX + f.rule for f in findings})
            detections[i][schema.CLEAN_FINDINGS] = [f"{f.rule}: {f.detail}" for f in findings]
        for i in excluded:
            detections[i]["tags"] = detections[i].get("tags", []) + [BOX_EXCLUDED_TAG]
        values[schema.GROUND_TRUTH] = doc[schema.GROUND_TRUTH]
        values[schema.CLEAN_BACKUP] = doc[schema.CLEAN_BACKUP]
    return {"$set": values, "excluded": len(excluded)}


def _sample_tags(doc: dict, sample: SampleFacts, has_excluded: bool) -> list[str]:
    tags = [t for t in doc.get("tags", []) if t not in SAMPLE_TAGS and not _is_clean_tag(t)]
    tags += sorted({schema.ISSUE_TAG_PREFIX + f.rule for f in sample.findings})
    if any(RULES[f.rule].severity == QUARANTINE for f in sample.findings):
        tags.append(schema.TAG_QUARANTINE)
    if has_excluded:
        tags.append(schema.TAG_HAS_EXCLUDED_CLASS)
    return tags
