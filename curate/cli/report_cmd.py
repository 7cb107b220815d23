"""``curate report RUN``: a static HTML report."""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(
    run: Path = typer.Argument(..., help="Run folder evaluated by `curate evaluate DATASET --model RUN`."),
    out: Path = typer.Option(None, "--out", help="HTML file to write (default: RUN/report.html)."),
    gallery: int = typer.Option(12, "--gallery", min=0, help="False positives and misses to show, each "
                                "(0: no galleries; the dataset is then not opened)."),
) -> None:
    """One self-contained HTML file: metrics, PR curves, size bins, confusion, training curves, timing,
    and galleries of the worst failures. Opens from disk; no server needed."""
    import time

    from curate.cli.render import console
    from curate.report_html import write_report

    start = time.perf_counter()
    path = write_report(run, out, gallery)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s); "
                  f"open it in a browser: file://{path.resolve()}")
