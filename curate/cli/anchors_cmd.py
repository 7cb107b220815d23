"""``curate anchors RECIPE [--fit]``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def anchors_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML whose model (backbone, input size, resize) is used."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default: the recipe's `dataset`)."),
    fit: bool = typer.Option(False, "--fit", help="Fit anchors to the boxes and write them into the recipe."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the recipe with fitted anchors here "
                                "instead of editing RECIPE in place."),
    seed: int = typer.Option(0, "--seed"),
    plot: Path = typer.Option(None, "--plot", help="PNG of box sizes with the anchors (default: "
                              "./curate-anchors/<recipe>.png)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Grid-aware anchor coverage of the training boxes; with --fit, anchors fitted by IoU k-means."""
    import fiftyone as fo

    from curate import anchors
    from curate.cli import render_anchors
    from curate.recipe import load_recipe
    from trainer.build import anchor_spec

    spec = load_recipe(recipe)
    name = dataset or spec.dataset
    if not name or not fo.dataset_exists(name):
        raise CurateError(f"dataset {name!r} not found; fix: set `dataset:` in {recipe} or pass --dataset")
    ds = fo.load_dataset(name)
    sample = anchors.training_boxes(ds, spec.data.train_split)
    if not len(sample.labels):
        raise CurateError(f"{name}: no usable boxes in the training view; fix: import, clean and split first")
    report, result = anchors.compare_and_fit(spec, sample, fit=fit, seed=seed)
    chosen = result.spec if result else anchor_spec(spec)
    if result:
        target = output or recipe
        section = anchors.anchors_yaml(result.spec, report, current=spec.anchors)
        target.write_text(anchors.write_into_recipe(recipe.read_text(), section))
        report.written_to = str(target)
    anchors.record_on_dataset(ds, report)
    png = None
    if chosen is not None:
        png = anchors.scatter(sample, spec, chosen, plot or Path("curate-anchors") / f"{recipe.stem}.png")
    if as_json:
        typer.echo(json.dumps({**vars(report), "plot": str(png) if png else None}, indent=2, default=str))
    else:
        render_anchors.report(report, png)
