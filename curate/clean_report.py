"""A picture per rule: a few examples with the offending boxes drawn, so a person can judge."""

from __future__ import annotations

import json
from pathlib import Path

from curate import schema

EXAMPLES_IN_GALLERY = 8


def write_clean_report(dataset, report, out_dir: Path) -> list[Path]:
    """``report.json`` plus ``<rule>.png`` for every rule that found something; returns the files."""
    from curate.gallery import GalleryItem, draw_gallery

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json"]
    written[0].write_text(json.dumps(report.to_dict(), indent=2))
    for rule in report.counts:
        tag = schema.ISSUE_TAG_PREFIX + rule
        view = dataset.match_tags(tag).limit(EXAMPLES_IN_GALLERY)
        items = []
        for sample in view.select_fields([schema.GROUND_TRUTH, schema.CLEAN_FINDINGS]):
            detections = sample[schema.GROUND_TRUTH].detections if sample[schema.GROUND_TRUTH] else []
            boxes = [d.bounding_box or [0, 0, 0, 0] for d in detections]
            highlight = [i for i, d in enumerate(detections) if tag in (d.tags or [])]
            detail = next((f for f in sample[schema.CLEAN_FINDINGS] or [] if f.startswith(rule)), rule)
            items.append(GalleryItem(sample.filepath, boxes, highlight,
                                     f"{Path(sample.filepath).name}: {detail[len(rule) + 2:]}"))
        if items:
            written.append(draw_gallery(items, out_dir / f"{rule}.png", title=f"{rule} "
                                        f"({report.counts[rule]} findings)"))
    return written
