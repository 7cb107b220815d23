"""``curate predict MODEL IMAGES/``: pre-annotation."""

from __future__ import annotations

from pathlib import Path

import typer

SHOWN = 5  # skipped / unmatched files listed by name; the rest counted


def predict_command(
    model: Path = typer.Argument(..., help="Run folder written by `curate train`, or an .onnx written by "
                                 "`curate export` (its .json sidecar beside it)."),
    images: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    fmt: str = typer.Option("labelimg", "--format", help="labelimg: Pascal VOC XML beside each image, for "
                            "LabelImg; field: a FiftyOne field of --dataset."),
    dataset: str = typer.Option(None, "--dataset", help="With --format field: the dataset holding the images."),
    field: str = typer.Option("predictions", "--field", help="With --format field: the field to write."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", min=0.0, max=1.0,
                                          help="Keep detections scoring above this (with an .onnx model: at "
                                          "least its exported threshold)."),
    nms_iou: float = typer.Option(None, "--nms-iou", min=0.0, max=1.0,
                                  help="NMS IoU threshold (default: 0.45; an .onnx model's is in its graph, so "
                                  "only that value is accepted)."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Detections kept per image (default: 200; an .onnx "
                              "model's is in its graph, so only that value is accepted)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing XML files / field values."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Pre-annotate images with a trained model, so a person corrects boxes in LabelImg (then
    `curate import` the folder) instead of drawing them."""
    from curate.cli.render import console
    from curate.predict import predict_folder

    summary = predict_folder(model, images, fmt=fmt, dataset=dataset, field_name=field,
                             score_threshold=score_threshold, nms_iou=nms_iou, top_k=top_k, overwrite=overwrite,
                             progress=None if progress else False)
    console.print(f"{summary.images} images: {len(summary.written)} written ({summary.target}), "
                  f"{summary.boxes} boxes; nothing found in {len(summary.nothing_found)}")
    for label, paths, fix in (("skipped, same name as another image in its folder", summary.stem_collisions,
                               "LabelImg keeps one <name>.xml for both; rename them apart, then run predict again"),
                              ("skipped, already annotated", summary.skipped_existing, "pass --overwrite to replace"),
                              ("not in the dataset", summary.unmatched, "`curate import` them first")):
        if paths:
            shown = ", ".join(paths[:SHOWN]) + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")
            console.print(f"[yellow]{len(paths)} {label}[/]: {shown} ({fix})")
