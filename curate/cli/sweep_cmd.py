"""``curate sweep RECIPE --set key=v1,v2``."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def sweep_command(
    recipe: Path = typer.Argument(..., help="Base recipe YAML (its data stages run once for every variant)."),
    sets: list[str] = typer.Option(..., "--set", help="KEY=V1,V2,... (repeatable): one variant per "
                                   "combination, e.g. --set train.lr=0.02,0.04 --set loss.neg_pos_ratio=3,5."),
    out: Path = typer.Option(None, "--out", help="Sweep folder (default: runs/sweep-<recipe name>)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override train.epochs in every variant."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on a "
                                  "terminal)."),
) -> None:
    """Train and evaluate every combination of --set values, then compare them (table + plots).
    Re-running skips the finished variants."""
    from curate.cli import render_run
    from curate.cli.render import console
    from curate.recipe import load_recipe
    from curate.sweep import make_variants, parse_set, run_sweep
    from curate.sweep_report import best_index, markdown_table, variant_row, write_comparison

    spec = load_recipe(recipe)
    parsed = [parse_set(option) for option in sets]
    variants = make_variants(spec, parsed, epochs=epochs)
    folder = out or Path("runs") / f"sweep-{spec.name or recipe.stem}"
    console.print(f"[bold]curate sweep[/] {recipe}: {len(variants)} variants -> {folder} (dataset {spec.dataset})")
    began = time.perf_counter()
    _, results = run_sweep(spec, recipe, folder, variants, progress=progress, on_stage=render_run.stage_started,
                           on_done=render_run.stage_done, on_variant=_announce)
    rows = [variant_row(r.variant.name, r.variant.settings, r.run_dir) for r in results]
    files = write_comparison(rows, [key for key, _ in parsed], folder)
    ran = sum(any(d.action == "run" for d in r.decisions) for r in results)
    console.print(markdown_table(rows, [key for key, _ in parsed]), highlight=False, soft_wrap=True)
    best = best_index(rows)
    console.print(f"{ran} of {len(results)} variants ran in {time.perf_counter() - began:.1f} s; "
                  f"comparison: {', '.join(str(f) for f in files)}")
    if best is not None:
        console.print(f"best (*): [bold]{rows[best]['variant']}[/] in {rows[best]['run']}")
        _predictions_note(results, rows[best], spec.dataset)


def _predictions_note(results, best: dict, dataset: str) -> None:
    """Every variant writes `predictions` on the one dataset: say whose are there now."""
    from curate.cli.render import console

    evaluated = [r for r in results if any(d.stage == "evaluate" and d.action == "run" for d in r.decisions)]
    if evaluated and str(evaluated[-1].run_dir) != best["run"]:
        console.print(f"the dataset holds {evaluated[-1].variant.name}'s predictions; for the best one's: "
                      f"curate evaluate {dataset} --model {best['run']}")
    console.print(f"look at the failures in the App: curate review {dataset}")


def _announce(variant, index: int, total: int) -> None:
    from curate.cli.render import console

    settings = ", ".join(f"{k}={v}" for k, v in variant.settings.items())
    console.print(f"[bold]variant {index + 1}/{total}[/] {variant.name} ({settings})", highlight=False)
