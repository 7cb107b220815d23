"""Tables and the editable label-map proposal for ``curate labels``."""

from __future__ import annotations

import json

from rich.table import Table

from curate.cli.render import console

LABELS_SHOWN = 60


def vocabulary(vocab, groups, write_map) -> None:
    sources = sorted({s for counts in vocab.values() for s in counts})
    table = Table("label", "boxes", *sources, title=f"{len(vocab)} labels")
    for label, counts in list(vocab.items())[:LABELS_SHOWN]:
        table.add_row(label, str(sum(counts.values())), *[str(counts.get(s, "")) for s in sources])
    console.print(table)
    if len(vocab) > LABELS_SHOWN:
        console.print(f"... and {len(vocab) - LABELS_SHOWN} more (--json for all)")
    console.print(f"{len(groups)} proposed groups of variants:" if groups else "no variant groups found")
    for group in groups:
        counts = ", ".join(f"{x} ({sum(group.counts[x].values())})" for x in group.labels)
        console.print(f"  {group.reason}: {counts}", highlight=False)
    if write_map:
        console.print(f"proposal written to {write_map}: edit it, then `curate labels DATASET --map "
                      f"{write_map}`")


def proposal_yaml(groups) -> str:
    """``old: new`` lines mapping each variant to its group's most frequent label. ``-text`` variants
    are written commented out: a wordmark is often meant to be a class of its own."""
    lines = ["# curate label map: `old: new`. Delete lines you disagree with, then apply with --map.",
             "version: 1", "map:"]
    for group in groups:
        canonical = group.labels[0]
        prefix = "  # " if group.reason == "-text variant" else "  "
        lines.append(f"  # {group.reason}: " + ", ".join(
            f"{x} {group.counts[x]}" for x in group.labels))
        lines += [f"{prefix}{json.dumps(x)}: {json.dumps(canonical)}" for x in group.labels[1:]]
    return "\n".join(lines) + "\n"
