"""``curate evaluate DATASET --model RUN``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def evaluate_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    model: Path = typer.Option(..., "--model", help="Run folder written by `curate train` (best.pt or last.pt)."),
    split: str = typer.Option("test", "--split", help="Sample tag to evaluate on (\"\" = every usable sample)."),
    eval_key: str = typer.Option("eval", "--eval-key", help="Prefix of the fields written on boxes and samples."),
    iou: float = typer.Option(0.5, "--iou", min=0.05, max=0.95),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predict on a split, measure (VOC, COCO, size bins, confusion, timing) and write the verdicts back."""
    import fiftyone as fo

    from curate.cli.render import console
    from curate.evaluate import evaluate_dataset

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    if not model.is_dir():
        raise CurateError(f"--model {model}: not a run folder; fix: pass runs/NAME written by `curate train`")
    report = evaluate_dataset(fo.load_dataset(dataset), model, split=split, eval_key=eval_key, iou_threshold=iou)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    coco, ms = report["coco"], report["ms_per_image"]
    console.print(f"{report['images']} images ({split or 'all'}): VOC mAP@{iou:g} {report['voc_map50_all_point']:.3f} "
                  f"(11-point {report['voc_map50_11point']:.3f}); COCO AP {coco['AP']:.3f}, AP50 {coco['AP50']:.3f}, "
                  f"AP75 {coco['AP75']:.3f}, AR100 {coco['AR100']:.3f}")
    console.print(f"wrong detections above {report['confusion']['score_threshold']}: "
                  f"{report['confusion']['wrong_detections']}; per image: preprocess {ms['preprocess']:.1f} ms, "
                  f"network {ms['forward']:.1f} ms, decode + NMS {ms['postprocess']:.1f} ms")
    console.print(f"written: field 'predictions', '{eval_key}' tp/fp/fn on every box, saved views "
                  f"{eval_key}-high-confidence-fp / {eval_key}-missed / {eval_key}-worst; {model}/eval.json")
