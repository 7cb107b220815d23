"""``curate clean DATASET``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def clean_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    fix: bool = typer.Option(False, "--fix", help="Apply the safe, reversible fixes (clip, rescale, "
                             "normalise labels, drop degenerate boxes)."),
    undo: bool = typer.Option(False, "--undo", help="Remove every mark and fix of curate clean."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Keep the K most frequent classes."),
    min_instances: int = typer.Option(None, "--min-instances", min=1, help="Keep classes with >= N boxes."),
    classes: Path = typer.Option(None, "--classes", help="File with the declared class list, one per line."),
    recipe: Path = typer.Option(None, "--recipe", help="Take thresholds from this recipe's clean: section."),
    no_files: bool = typer.Option(False, "--no-files", help="Skip the image-file checks (faster)."),
    report_dir: Path = typer.Option(None, "--report", help="Folder for report.json and a PNG gallery per "
                                    "rule (default: ./curate-clean/DATASET)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    progress: bool = typer.Option(None, "--progress/--no-progress"),
) -> None:
    """Find, explain and quarantine bad data; keep the top-k classes. Deletes nothing."""
    import dataclasses

    import fiftyone as fo

    from curate.clean import run_clean, undo_clean
    from curate.clean_report import write_clean_report
    from curate.cli import render_clean
    from curate.recipe import CleanSection, load_recipe

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    ds = fo.load_dataset(dataset)
    if undo:
        restored = undo_clean(ds)
        render_clean.console.print(f"removed every clean mark; restored {restored} ground truths")
        return
    cfg = load_recipe(recipe).clean if recipe else CleanSection()
    overrides = {k: v for k, v in (("top_k", top_k), ("min_instances", min_instances)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    declared = _read_classes(classes) if classes else None
    report = run_clean(ds, cfg, fix=fix, classes=declared, inspect_files=not no_files, progress=progress)
    files = write_clean_report(ds, report, report_dir or Path("curate-clean") / dataset)
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "files": [str(f) for f in files]}, indent=2))
    else:
        render_clean.report(report, files)


def _read_classes(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise CurateError(f"--classes {path}: {exc}; fix: pass a text file with one class per line")
    if not names:
        raise CurateError(f"--classes {path}: no class names; fix: one class per line")
    return names
