"""``curate demo``: the main job. Generates a synthetic logo dataset in LabelImg layout (with the defects
clean must catch), then runs recipes/demo.yaml through `curate run` (import -> clean -> balance ->
anchors -> train -> evaluate -> report) on this CPU in minutes, and says where the report is."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import typer

DEMO_IMAGES = 300
DEFECT_EVERY = 30  # one image in 30 damaged: ~3%
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
MARKER = ".curate-demo.json"  # written after generation: what was generated (an interrupted one has none)


def demo_command(
    out: Path = typer.Option(Path("curate-demo"), "--out", help="Folder for the data, the recipe and the run."),
    name: str = typer.Option("curate-demo", "--name", help="Dataset name."),
    images: int = typer.Option(DEMO_IMAGES, "--images", min=8, help="Synthetic images to generate."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the demo recipe's epochs."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate a LabelImg folder of brand marks, run the whole demo recipe, say where the report is."""
    from curate.cli import render_run
    from curate.cli.render import console
    from curate.pipeline import make_pipeline
    from curate.synth import add_defects, write_labelimg_folder

    data = out / "labelimg"
    if _needs_generating(data, images, seed):
        console.print(f"[bold]generate[/]: {images} synthetic images (with damaged files and boxes) in {data}")
        write_labelimg_folder(data, images, seed=seed)
        add_defects(data, every=DEFECT_EVERY, seed=seed)
        (data / MARKER).write_text(json.dumps({"images": images, "seed": seed}))
    _check_dataset_is_this_demos(name, data)
    recipe_path = _demo_recipe(out, data, name, epochs)
    run_dir = out / "run"
    console.print(f"[bold]curate run[/] {recipe_path} -> {run_dir} (dataset {name})")
    began = time.perf_counter()
    pipeline = make_pipeline(_load(recipe_path), recipe_path, run_dir, on_stage=render_run.stage_started,
                             on_done=render_run.stage_done)
    decisions = {d.stage: d for d in pipeline.run()}
    plots = _info_plots(name, out / "info")
    _summary(decisions, name, run_dir, time.perf_counter() - began, plots)


def _needs_generating(data: Path, images: int, seed: int) -> bool:
    from curate.errors import CurateError

    marker = data / MARKER
    if marker.is_file():
        if json.loads(marker.read_text()) == {"images": images, "seed": seed}:
            return False
        shutil.rmtree(data)  # ours (the marker says so), generated with other settings
        return True
    if data.exists() and any(data.iterdir()):
        raise CurateError(f"{data}: holds files `curate demo` did not finish writing (an interrupted run, or "
                          f"someone else's); fix: delete {data} or pass another --out")
    return True


def _check_dataset_is_this_demos(name: str, data: Path) -> None:
    """Never mix two demos' images (another --out) or a user's dataset into one."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    from curate.errors import CurateError

    if not fo.dataset_exists(name):
        return
    foreign = fo.load_dataset(name).match(~F("filepath").starts_with(str(data.resolve()) + "/")).count()
    if foreign:
        raise CurateError(f"dataset {name!r} holds {foreign} images from outside {data}; fix: pass another "
                          f"--name, or delete it (`fiftyone datasets delete {name}`)")


def _demo_recipe(out: Path, data: Path, name: str, epochs: int | None) -> Path:
    """recipes/demo.yaml pointed at this folder and dataset (so the demo runs from any directory)."""
    import yaml

    from curate.recipe import load_recipe, recipe_to_dict

    recipe = recipe_to_dict(load_recipe(RECIPE))
    recipe["dataset"] = name
    recipe["sources"] = [{**recipe["sources"][0], "path": str(data.resolve())}]
    if epochs:
        recipe["train"]["epochs"] = epochs
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo-recipe.yaml"
    path.write_text("# written by `curate demo` from recipes/demo.yaml\n" + yaml.safe_dump(recipe, sort_keys=False))
    return path


def _load(path: Path):
    from curate.recipe import load_recipe

    return load_recipe(path)


def _info_plots(name: str, folder: Path) -> Path:
    import fiftyone as fo

    from curate.info import summarize, write_plots

    write_plots(fo.load_dataset(name), summarize(fo.load_dataset(name)), folder)
    return folder


def _summary(decisions: dict, name: str, run_dir: Path, seconds: float, plots: Path) -> None:
    from curate.cli.render import console

    evaluation = json.loads((run_dir / "eval.json").read_text())
    report = decisions["report"].summary.get("report") if "report" in decisions else None
    console.print(f"\n[bold]done[/] in {seconds / 60:.1f} min: {evaluation['split']} mAP@0.5 "
                  f"{evaluation['voc_map50_all_point']:.3f} (COCO AP {evaluation['coco']['AP']:.3f}) on "
                  f"{evaluation['images']} images.")
    console.print(f"report: {report or run_dir / 'report.html'}", soft_wrap=True, highlight=False)
    console.print(f"class and box-size plots: {plots}; clean findings and galleries: {run_dir / 'clean'}; "
                  f"run folder: {run_dir}", soft_wrap=True, highlight=False)
    console.print(f"look at the failures in the FiftyOne App: curate review {name}", highlight=False, soft_wrap=True)
