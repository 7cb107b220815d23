"""``curate train RECIPE``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from curate.errors import CurateError


def train_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default: the recipe's `dataset`)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<recipe name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last.pt, with "
                                "the manifest it was started with."),
    manifest_only: bool = typer.Option(False, "--manifest-only", help="Write the manifest and stop."),
) -> None:
    """Snapshot the recipe's training and validation views into a manifest, then train an SSD on it."""
    import fiftyone as fo

    from curate.cli.render import console
    from curate.manifest import choose_classes, write_manifest
    from curate.recipe import load_recipe

    spec = load_recipe(recipe)
    name = dataset or spec.dataset
    if not name or not fo.dataset_exists(name):
        raise CurateError(f"dataset {name!r} not found; fix: set `dataset:` in {recipe} or pass --dataset")
    run_dir = out or Path("runs") / (spec.name or recipe.stem)
    manifest = run_dir / "manifest.jsonl"
    if not (resume and manifest.is_file()):
        ds = fo.load_dataset(name)
        info = write_manifest(ds, manifest, splits={"train": spec.data.train_split, "val": spec.data.val_split},
                              classes=choose_classes(ds, spec.data.classes))
        console.print(f"manifest {manifest}: {info.counts} images, {info.boxes} boxes, "
                      f"{len(info.classes)} classes")
    if manifest_only:
        return
    command = [sys.executable, "-m", "trainer", str(recipe), "--manifest", str(manifest), "--out", str(run_dir)]
    # A child process: the trainer never shares this process's MongoDB client with its workers.
    code = subprocess.call(command + (["--resume"] if resume else []))
    if code:
        raise typer.Exit(code)
    console.print(f"run folder: {run_dir} (last.pt, best.pt, metrics.csv, curves.png)")
