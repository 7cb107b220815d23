"""``curate train RECIPE``."""

from __future__ import annotations

from pathlib import Path

import typer


def train_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default: the recipe's `dataset`)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<recipe name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last.pt, with "
                                "the manifest it was started with."),
    manifest_only: bool = typer.Option(False, "--manifest-only", help="Write the manifest and stop."),
) -> None:
    """Snapshot the recipe's training and validation views into a manifest, then train an SSD on it."""
    from curate.cli.render import console
    from curate.recipe import load_recipe
    from curate.training import prepare_manifest, run_folder, run_trainer

    spec = load_recipe(recipe)
    run_dir = run_folder(recipe, spec, out)
    manifest, info = prepare_manifest(spec, dataset or spec.dataset, run_dir, reuse=resume)
    if info:
        console.print(f"manifest {manifest}: {info.counts} images, {info.boxes} boxes, "
                      f"{len(info.classes)} classes")
    if manifest_only:
        return
    code = run_trainer(recipe, manifest, run_dir, resume=resume)
    if code:
        raise typer.Exit(code)
    console.print(f"run folder: {run_dir} (last.pt, best.pt, metrics.csv, curves.png)")
