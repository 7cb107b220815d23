"""``curate balance DATASET``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def balance_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    split: bool = typer.Option(False, "--split", help="Stratified train/val/test split (duplicate groups "
                               "kept together; existing splits respected unless --resplit)."),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="train,val,test fractions."),
    resplit: bool = typer.Option(False, "--resplit", help="Ignore existing split tags."),
    select: float = typer.Option(None, "--select", help="Keep the subset closest to the target: a fraction "
                                 "(0-1) or a count of images (or instances with --budget-unit)."),
    budget_unit: str = typer.Option("images", "--budget-unit", help="images or instances."),
    target: str = typer.Option("uniform", "--target", help="uniform, tempered:T (q ~ n^T) or a YAML file "
                               "of class weights."),
    weights: bool = typer.Option(False, "--weights", help="Write sample_weight for a weighted sampler "
                                 "instead of dropping data."),
    negatives: str = typer.Option(None, "--negatives", help="positives:negatives in images, e.g. 3:1: choose "
                                  "background-only images (never excluded-class, quarantined or copies)."),
    negatives_from: Path = typer.Option(None, "--negatives-from", help="Import this folder of background "
                                        "images (source 'negatives') before choosing."),
    seed: int = typer.Option(0, "--seed"),
    plots: Path = typer.Option(None, "--plots", help="Folder for PNGs (default ./curate-balance/DATASET)."),
    undo: bool = typer.Option(False, "--undo", help="Remove the selection, weights and chosen negatives."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rebalance classes by KL divergence (subset or weights), and split train/val/test."""
    import fiftyone as fo

    from curate import balance
    from curate.cli import render_balance

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    ds = fo.load_dataset(dataset)
    if undo:
        balance.undo_balance(ds)
        return render_balance.console.print("removed the selection, weights and chosen negatives")
    if not (split or select or weights or negatives):
        raise CurateError("nothing to do; fix: pass --split, --select BUDGET, --weights and/or --negatives 3:1")
    if negatives_from:
        from curate.ingest import import_folder

        import_folder(negatives_from, dataset_name=dataset, fmt="labelimg", source="negatives")
    table = balance.load_table(ds)
    report = balance.BalanceReport(dataset, table.classes)
    if split:
        report.split = balance.assign_splits(ds, table, _fractions(fractions), resplit=resplit, seed=seed)
    q = _target(target, table)
    if select:
        budget = _budget(select, table, budget_unit)
        report.selection = balance.select_balanced(ds, table, budget=budget, budget_unit=budget_unit,
                                                   target=q, seed=seed)
    if weights:
        report.weights = balance.write_weights(ds, table, q)
    if negatives:
        table = balance.load_table(ds)  # after the selection and splits above
        report.negatives = balance.select_negatives(ds, table, ratio=_ratio(negatives),
                                                    fractions=_fractions(fractions), seed=seed)
    balance.save_report(ds, report)
    files = render_balance.plots(report, table, q, plots or Path("curate-balance") / dataset, seed)
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "plots": [str(f) for f in files]}, indent=2, default=str))
    else:
        render_balance.report(report, files)


def _fractions(text: str) -> dict[str, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise CurateError(f"--fractions {text!r}: write three numbers, e.g. 0.8,0.1,0.1") from None
    if len(values) != 3 or abs(sum(values) - 1) > 1e-6 or min(values) < 0:
        raise CurateError(f"--fractions {text!r}: three non-negative numbers summing to 1 (train,val,test)")
    return dict(zip(("train", "val", "test"), values))


def _ratio(text: str) -> float:
    try:
        positives, negatives = (float(v) for v in text.split(":"))
        return positives / negatives
    except (ValueError, ZeroDivisionError):
        raise CurateError(f"--negatives {text!r}: write positives:negatives, e.g. 3:1") from None


def _target(text: str, table):
    from curate.balance_opt import target_distribution

    totals = table.counts.sum(axis=0)
    if text == "uniform":
        return target_distribution(totals, "uniform")
    if text.startswith("tempered:"):
        return target_distribution(totals, "tempered", temperature=float(text.split(":", 1)[1]))
    import yaml

    try:
        given = yaml.safe_load(Path(text).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CurateError(f"--target {text}: {exc}; fix: uniform, tempered:0.5 or a YAML `class: weight` file")
    unknown = set(given) - set(table.classes)
    if unknown:
        raise CurateError(f"--target {text}: unknown classes {sorted(unknown)}; known: {table.classes}")
    return target_distribution(totals, "weights", weights=[float(given.get(c, 0)) for c in table.classes])


def _budget(select: float, table, unit: str) -> int:
    total = int((table.counts.sum(axis=1) > 0).sum()) if unit == "images" else int(table.counts.sum())
    return max(1, int(round(select * total))) if select <= 1 else int(select)
