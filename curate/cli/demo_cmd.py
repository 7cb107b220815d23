"""``curate demo``: the main job. Today: generate a LabelImg folder, import it, summarise, plot.

It grows as stages land (clean, balance, anchors, train, evaluate, report).
"""

from __future__ import annotations

from pathlib import Path

import typer

DEMO_IMAGES = 300


def demo_command(
    out: Path = typer.Option(Path("curate-demo"), "--out", help="Folder for the generated data and plots."),
    name: str = typer.Option("curate-demo", "--name", help="Dataset name."),
    images: int = typer.Option(DEMO_IMAGES, "--images", min=1, help="Synthetic images to generate."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate a synthetic logo dataset in LabelImg layout and run every stage that exists on it."""
    from curate.cli import render, render_info
    from curate.info import summarize, write_plots
    from curate.ingest import import_path
    from curate.synth import write_labelimg_folder

    data = out / "labelimg"
    if not any(data.glob("*.xml")):
        render.console.print(f"generating {images} synthetic images in {data} ...")
        write_labelimg_folder(data, images, seed=seed)
    render.import_summary(import_path(data, dataset_name=name, source="synthetic-logos"))
    import fiftyone as fo

    dataset = fo.load_dataset(name)
    summary = summarize(dataset)
    render_info.summary(summary, write_plots(dataset, summary, out / "info"))
    render.console.print(f"\ndone. Explore it: [bold]curate info {name}[/], or in Python: "
                         f"fo.launch_app(fo.load_dataset({name!r}))")
