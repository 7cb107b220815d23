"""``curate negatives DATASET --mine --model RUN``: hard-negative mining for the next training round."""

from __future__ import annotations

from pathlib import Path

import typer

from curate.errors import CurateError


def negatives_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    mine: bool = typer.Option(False, "--mine", help="Score the background pool with --model, keep the hardest."),
    model: Path = typer.Option(None, "--model", help="Run folder written by `curate train`."),
    count: int = typer.Option(None, "--count", min=1, help="Hard negatives to add (default: a quarter of the "
                                                           "pool, at most the number of positive images)."),
    split: str = typer.Option("train", "--split", help="Split tag given to a mined image that has none."),
    min_score: float = typer.Option(0.05, "--min-score", min=0.0, max=1.0,
                                    help="Detections below this do not make an image hard."),
    undo: bool = typer.Option(False, "--undo", help="Remove every mined negative (exactly what mining added)."),
) -> None:
    """Add the background images the model fires on most confidently to the training set."""
    import fiftyone as fo

    from curate.cli.render import console
    from curate.negatives import VIEW, mine_hard_negatives, undo_mining

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    loaded = fo.load_dataset(dataset)
    if undo:
        console.print(f"removed {undo_mining(loaded)} mined negatives")
        return
    if not mine or model is None or not model.is_dir():
        raise CurateError("pass --mine --model RUN (a run folder written by `curate train`), or --undo")
    report = mine_hard_negatives(loaded, model, count=count or _default_count(loaded), split=split,
                                 min_score=min_score)
    console.print(f"pool {report['pool']} background images, {report['firing_images']} with a detection >= "
                  f"{min_score:g}; selected {report['selected']} (score >= {report['selected_score_min']:.2f}, "
                  f"median {report['selected_score_median']:.2f} vs {report['pool_score_median']:.2f} over "
                  f"the pool), tagged negative_selected + hard_negative")
    for item in report["hardest"]:
        console.print(f"  {item['score']:.2f} {item['label']:<16} {item['filepath']}")
    console.print(f"saved view {VIEW}; retrain with `curate train RECIPE` (the manifest includes them)")


def _default_count(dataset) -> int:
    from curate.balance import load_table, negative_candidates, positive_rows

    table = load_table(dataset)
    return max(1, min(len(negative_candidates(table)) // 4, int(positive_rows(table).sum())))
