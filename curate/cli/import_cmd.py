"""``curate import PATH``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.cli import render


def import_command(
    path: Path = typer.Argument(..., help="Folder to import (format auto-detected; see --format)."),
    name: str = typer.Option(None, "--name", "-n", help="Dataset name (default: the folder's name)."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto, or one reader: see `curate formats`."),
    images: list[Path] = typer.Option(None, "--images", help="Extra folder to look for the annotations' "
                                      "images in (repeatable); unclaimed images there import as unlabeled."),
    source: str = typer.Option(None, "--source", help="Value of each sample's `source` (default: folder name)."),
    on_error: str = typer.Option("skip", "--on-error", help="skip: list bad files in the report and go on; "
                                 "fail: stop at the first one."),
    duplicates: bool = typer.Option(True, "--duplicates/--no-duplicates", help="Hash the images and group "
                                    "exact and near duplicates (within and across sources)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Import a folder of annotations into a FiftyOne dataset (re-running it resumes / updates).

    A folder whose subfolders hold several datasets becomes one dataset with a `source` per subfolder.
    """
    from curate.ingest import import_path

    dataset_name = name or Path(path).resolve().name
    summary = import_path(path, dataset_name=dataset_name, fmt=fmt, source=source, on_error=on_error,
                          image_dirs=images or (), find_duplicates=duplicates, progress=progress)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        render.import_summary(summary)
