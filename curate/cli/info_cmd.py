"""``curate info DATASET``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def info_command(
    dataset: str = typer.Argument(..., help="Dataset name (see `curate import`)."),
    plots: Path = typer.Option(None, "--plots", help="Folder for PNG plots (default: ./curate-info/DATASET)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not write plots."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Classes, boxes per image, box sizes, sources and splits of a dataset; plots as PNG."""
    import fiftyone as fo

    from curate.cli import render_info
    from curate.info import summarize, write_plots

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}` "
                          f"(existing: {', '.join(fo.list_datasets()) or 'none'})")
    ds = fo.load_dataset(dataset)
    summary = summarize(ds)
    written = [] if no_plots else write_plots(ds, summary, plots or Path("curate-info") / dataset)
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), "plots": [str(p) for p in written]}, indent=2))
    else:
        render_info.summary(summary, written)
