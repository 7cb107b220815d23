"""Tables for ``curate info``."""

from __future__ import annotations

from rich.table import Table

from curate.cli.render import console

CLASSES_SHOWN = 30
STAT_KEYS = ("p0", "p5", "p25", "p50", "p75", "p95", "p100", "mean")


def summary(s, plots) -> None:
    console.print(f"[bold]{s.name}[/]: {s.samples} samples, {s.labeled} labeled "
                  f"({s.negatives} with no boxes), {s.unlabeled} unlabeled, {s.boxes} boxes, "
                  f"{len(s.classes)} classes")
    classes = Table("class", "boxes", "images", title="classes")
    for name, counts in list(s.classes.items())[:CLASSES_SHOWN]:
        classes.add_row(name, str(counts["instances"]), str(counts["images"]))
    if len(s.classes) > CLASSES_SHOWN:
        classes.add_row(f"... {len(s.classes) - CLASSES_SHOWN} more", "", "")
    console.print(classes)
    dist = Table("", *STAT_KEYS, title="distributions")
    dist.columns[0].no_wrap = True
    for label, stats in (("boxes/image", s.boxes_per_image), ("width px", s.box_width_px),
                         ("height px", s.box_height_px), ("area/image", s.box_area_fraction),
                         ("aspect w/h", s.box_aspect_w_over_h)):
        if stats:
            dist.add_row(label, *[f"{stats[k]:.3g}" for k in STAT_KEYS])
    console.print(dist)
    console.print("sources: " + ", ".join(f"{k} {v}" for k, v in s.sources.items()))
    console.print("splits: " + (", ".join(f"{k} {v}" for k, v in s.splits.items()) or "none"))
    console.print("tags: " + (", ".join(f"{k} {v}" for k, v in s.tags.items()) or "none"))
    for path in plots:
        console.print(f"plot: {path}")
