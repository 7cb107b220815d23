"""The table of ``curate clean``."""

from __future__ import annotations

from rich.table import Table

from curate.cli.render import console
from curate.clean_rules import RULES


def report(r, files) -> None:
    table = Table("rule", "severity", "count", "fix", "what it means / examples",
                  title=f"{r.dataset}: {r.samples} samples checked in {r.seconds:.1f} s")
    for name, count in r.counts.items():
        rule = RULES[name]
        examples = "\n".join(e.rsplit("/", 1)[-1] for e in r.examples.get(name, [])[:2])
        table.add_row(name, rule.severity, str(count), rule.fix or "", f"{rule.explains}\n{examples}")
    console.print(table if r.counts else "no findings")
    console.print(f"{r.quarantined} samples quarantined (kept, excluded from training views).")
    if r.classes_kept is not None:
        console.print(f"classes kept: {len(r.classes_kept)} ({', '.join(r.classes_kept[:20])}"
                      f"{', ...' if len(r.classes_kept) > 20 else ''}); {r.boxes_excluded} boxes of "
                      "other classes excluded, their images never used as negatives")
    if r.fixes:
        console.print("fixes applied: " + ", ".join(f"{k} {v}" for k, v in r.fixes.items())
                      + f"; undo with `curate clean {r.dataset} --undo`")
    for path in files:
        console.print(f"report: {path}")
