"""``curate demo``: the main job. Generates a synthetic logo dataset in LabelImg layout (with the defects
clean must catch), then import -> clean -> split -> train -> evaluate, on this CPU in minutes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

DEMO_IMAGES = 300
DEFECT_EVERY = 30  # one image in 30 damaged: ~3%
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def demo_command(
    out: Path = typer.Option(Path("curate-demo"), "--out", help="Folder for the data, reports and run."),
    name: str = typer.Option("curate-demo", "--name", help="Dataset name."),
    images: int = typer.Option(DEMO_IMAGES, "--images", min=8, help="Synthetic images to generate."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the demo recipe's epochs."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run every stage that exists on a generated dataset and say where the results are."""
    import dataclasses

    import fiftyone as fo
    import yaml

    from curate.balance import assign_splits, load_table
    from curate.clean import run_clean
    from curate.clean_report import write_clean_report
    from curate.evaluate import evaluate_dataset
    from curate.cli import render, render_clean, render_info
    from curate.info import summarize, write_plots
    from curate.ingest import import_path
    from curate.recipe import load_recipe, recipe_to_dict
    from curate.synth import add_defects, write_labelimg_folder
    from curate.training import prepare_manifest, run_trainer

    data = out / "labelimg"
    if not any(data.glob("*.xml")):
        render.console.print(f"[bold]1/6 generate[/]: {images} synthetic images in {data}")
        write_labelimg_folder(data, images, seed=seed)
        add_defects(data, every=DEFECT_EVERY, seed=seed)
    render.console.print("[bold]2/6 import[/]")
    render.import_summary(import_path(data, dataset_name=name, source="synthetic-logos"))
    dataset = fo.load_dataset(name)
    render_info.summary(summarize(dataset), write_plots(dataset, summarize(dataset), out / "info"))
    render.console.print("[bold]3/6 clean[/]")
    report = run_clean(dataset)
    render_clean.report(report, write_clean_report(dataset, report, out / "clean"))
    render.console.print("[bold]4/6 split[/]")
    split = assign_splits(dataset, load_table(dataset), {"train": 0.8, "val": 0.2, "test": 0.0},
                          resplit=False, seed=seed)
    render.console.print(f"train {split['table']['train']['images']} / val {split['table']['val']['images']}")
    render.console.print("[bold]5/6 train[/] (recipes/demo.yaml)")
    recipe = load_recipe(RECIPE)
    if epochs:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, epochs=epochs))
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = run_dir / "demo-recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({**recipe_to_dict(recipe), "dataset": name}))
    manifest, _ = prepare_manifest(recipe, name, run_dir, reuse=False)
    if run_trainer(recipe_path, manifest, run_dir, resume=False):
        raise typer.Exit(1)
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    render.console.print("[bold]6/6 evaluate[/] (the val split; predictions and tp/fp/fn written back)")
    result = evaluate_dataset(dataset, run_dir, split="val")
    render.console.print(f"\n[bold]done[/]: val mAP@0.5 {result['voc_map50_all_point']:.3f} after "
                         f"{last['epoch']} epochs (COCO AP {result['coco']['AP']:.3f}). Results: {out}/info "
                         f"(plots), {out}/clean (report + galleries), {run_dir} (checkpoints, metrics.csv, "
                         f"curves.png, eval.json).\nLook at the failures in the FiftyOne App (saved views "
                         f"eval-high-confidence-fp, eval-missed, eval-worst): python -c \"import fiftyone as fo; "
                         f"fo.launch_app(fo.load_dataset('{name}')).wait()\"")
