"""``curate evaluate DATASET --model RUN`` (or ``--pred-field FIELD`` for stored predictions)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def evaluate_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    model: Path = typer.Option(None, "--model", help="Run folder written by `curate train` (best.pt or last.pt)."),
    pred_field: str = typer.Option(None, "--pred-field",
                                   help="Evaluate predictions already stored in this field instead of a model."),
    split: str = typer.Option(None, "--split",
                              help="Sample tag to evaluate on (\"\" = every usable sample). Default: test with "
                                   "--model, all with --pred-field."),
    eval_key: str = typer.Option("eval", "--eval-key", help="Prefix of the fields written on boxes and samples."),
    iou: float = typer.Option(0.5, "--iou", min=0.05, max=0.95),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predict on a split, measure (VOC, COCO, size bins, confusion, timing) and write the verdicts back."""
    import fiftyone as fo

    from curate.cli.render import console
    from curate.evaluate import evaluate_dataset, evaluate_field

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    if (model is None) == (pred_field is None):
        raise CurateError("pass exactly one of --model RUN (predict, then evaluate) or --pred-field FIELD "
                          "(evaluate stored predictions)")
    if model is not None and not model.is_dir():
        raise CurateError(f"--model {model}: not a run folder; fix: pass runs/NAME written by `curate train`")
    loaded = fo.load_dataset(dataset)
    if model is not None:
        report = evaluate_dataset(loaded, model, split="test" if split is None else split, eval_key=eval_key,
                                  iou_threshold=iou)
    else:
        report = evaluate_field(loaded, pred_field, split=split or "", eval_key=eval_key, iou_threshold=iou)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print(console, report, iou)


def _print(console, report: dict, iou: float) -> None:
    coco = report["coco"]
    console.print(f"{report['images']} images ({report['split'] or 'all'}): VOC mAP@{iou:g} "
                  f"{report['voc_map50_all_point']:.3f} (11-point {report['voc_map50_11point']:.3f}); COCO AP "
                  f"{coco['AP']:.3f}, AP50 {coco['AP50']:.3f}, AP75 {coco['AP75']:.3f}, AR100 {coco['AR100']:.3f}")
    console.print(f"wrong detections above {report['confusion']['score_threshold']}: "
                  f"{report['confusion']['wrong_detections']}")
    if "ms_per_image" in report:
        ms, speed = report["ms_per_image"], report["speed"]
        console.print(f"per image: preprocess {ms['preprocess']:.1f} ms, network {ms['forward']:.1f} ms, decode + "
                      f"NMS {ms['postprocess']:.1f} ms; {speed.get('fps_batch1', 0):.1f} img/s at batch 1, "
                      f"{speed.get('fps_batchN', 0):.1f} at batch {speed['batch']}; {speed['params'] / 1e6:.2f} M "
                      f"parameters, {speed['checkpoint_mb']:.1f} MB checkpoint")
    key = report["eval_key"]
    console.print(f"written: '{key}' tp/fp/fn on every box of '{report['pred_field']}' and 'ground_truth' "
                  f"(FiftyOne evaluation '{key}')" + (f"; {report['run']}/eval.json" if "run" in report else ""))
    for name, count in report["views"].items():
        console.print(f"  saved view {name}: {count} sample{'' if count == 1 else 's'}")
    console.print(f"look at them: curate review {report['dataset']} --eval-key {key}")
