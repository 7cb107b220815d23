"""The comparison table of ``curate anchors``."""

from __future__ import annotations

from rich.table import Table

from curate.cli.render import console


def report(r, png) -> None:
    table = Table("anchors", "priors", "coverage", "mean best IoU", "positives / box",
                  title=f"{r.boxes} boxes ({r.view}); coverage = share with a default box at IoU >= 0.5")
    for name, cov in r.coverage.items():
        o = cov["overall"]
        table.add_row(name, str(cov.get("num_priors", "")), f"{o['coverage']:.3f}", f"{o['mean_best_iou']:.3f}",
                      f"{o['mean_positives']:.2f}")
    console.print(table)
    if r.fitted:
        small = r.fitted["too_small"]
        stride = max(small["finest_stride_px"])
        console.print(f"{small['count']} boxes too small for the finest layer (stride {stride:.1f} px); "
                      f"fitted anchors written to {r.written_to}")
    if png:
        console.print(f"plot: {png}")
