"""``curate run RECIPE``: every stage, skipping the unchanged ones."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def run_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML with sources:, clean:, balance:, ... (recipes/)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/<recipe name>)."),
    force: list[str] = typer.Option(None, "--force", help="Run this stage even if unchanged (repeatable): "
                                    "import, clean, balance, anchors, train, evaluate, report."),
    start: str = typer.Option(None, "--from", help="Run this stage and every later one even if unchanged."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which stages would run and why; run nothing."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on a "
                                  "terminal)."),
) -> None:
    """import -> clean -> balance -> anchors -> train -> evaluate -> report, each skipped when what it
    reads is unchanged since it last succeeded; a killed run resumes where it stopped."""
    from curate.cli import render_run
    from curate.cli.render import console
    from curate.pipeline import default_run_dir, forced_stages, make_pipeline
    from curate.recipe import load_recipe

    spec = load_recipe(recipe)
    run_dir = out or default_run_dir(spec, recipe)
    pipeline = make_pipeline(spec, recipe, run_dir, forced=forced_stages(force or (), start), progress=progress,
                             on_stage=render_run.stage_started, on_done=render_run.stage_done)
    console.print(f"[bold]curate run[/] {recipe} -> {run_dir} (dataset {spec.dataset})")
    if dry_run:
        render_run.plan(pipeline.plan())
        return
    began = time.perf_counter()
    decisions = pipeline.run()
    ran = sum(d.action == "run" for d in decisions)
    console.print(f"[bold]done[/] in {time.perf_counter() - began:.1f} s: {ran} of {len(decisions)} stages ran; "
                  f"state in {run_dir / 'pipeline.json'}")
    _where_next(decisions, spec.dataset, run_dir)


def _where_next(decisions, dataset: str, run_dir: Path) -> None:
    from curate.cli.render import console

    report = next((d for d in decisions if d.stage == "report"), None)
    if report and report.action != "off" and report.summary.get("report"):
        console.print(f"report: {report.summary['report']}")
    elif report:
        console.print(f"report: none ({report.reason}); metrics in {run_dir / 'eval.json'}")
    console.print(f"look at the failures in the App: curate review {dataset}")
