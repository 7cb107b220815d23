"""``curate export RUN --onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def export_command(
    run: Path = typer.Argument(..., help="Run folder written by `curate train` (best.pt, else last.pt)."),
    onnx: bool = typer.Option(False, "--onnx", help="Export to ONNX (the one format so far)."),
    out: Path = typer.Option(None, "--out", help="ONNX file to write (default: RUN/model.onnx); the sidecar "
                             "is the same name with .json."),
    quantize: str = typer.Option(None, "--quantize", help="int8: also write dynamic and static int8 models "
                                 "and compare them with the float one."),
    score_threshold: float = typer.Option(0.3, "--score-threshold", help="Per-class score threshold, in the graph."),
    top_k: int = typer.Option(200, "--top-k", help="Detections kept per image, in the graph."),
    nms_iou: float = typer.Option(0.45, "--nms-iou", help="NMS IoU threshold, in the graph."),
    check_images: Path = typer.Option(None, "--check-images", help="Folder of images for the torch/ONNX check "
                                      "(LabelImg XML beside an image gives mAP); default: the run's validation "
                                      "split (RUN/manifest.jsonl)."),
    check_count: int = typer.Option(50, "--check-count", min=1, help="Images checked and timed."),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed calls per model (median, after 5 warm-up calls)."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for both runtimes while timing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a trained SSD with its post-processing (decode, threshold, top-k, NMS) for deployment,
    then check ONNX Runtime against torch on real images and time both. The file takes its name only once
    the check passes; a failing one is kept as NAME.failed.onnx."""
    from curate.cli.render import console
    from curate.export import ExportSettings, export_run

    if not onnx:
        raise CurateError("curate export: no format chosen; fix: pass --onnx")
    settings = ExportSettings(score_threshold=score_threshold, nms_iou=nms_iou, top_k=top_k, quantize=quantize,
                              check_images=check_images, check_limit=check_count, timing_runs=runs,
                              threads=threads)
    report = export_run(run, out, settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for line in summary_lines(report):
        console.print(line)


def summary_lines(report: dict) -> list[str]:
    check, ms, size = report["check"], report["ms_per_image"], report["size_bytes"]
    lines = [f"wrote {report['onnx']} ({size['onnx'] / 1e6:.2f} MB; checkpoint {size['checkpoint'] / 1e6:.2f} MB) "
             f"and {Path(report['onnx']).with_suffix('.json').name}",
             f"check [green]passed[/]: {check['detections']} detections on {check['images']} images equal "
             f"(box diff <= {check['max_box_diff']:.1e}, score diff <= {check['max_score_diff']:.1e})",
             f"batch 1, {ms['threads']} thread(s), median of {ms['runs']}: torch eager {ms['torch_eager']:.1f} ms, "
             f"ONNX Runtime {ms['onnx_runtime']:.1f} ms ({report['speedup_vs_torch']:.1f}x)"]
    if report.get("voc_map50"):
        lines.append(f"VOC mAP@0.5 at score > {report['voc_map50']['at_score_threshold']:g} on "
                     f"{report['voc_map50']['images']} images: {report['voc_map50']['onnx']:.3f}")
    notes = report.get("ground_truth_notes") or []
    if notes:
        from rich.markup import escape

        more = f" and {len(notes) - 1} more" if len(notes) > 1 else ""
        lines.append(f"[yellow]{len(notes)} check image(s) without ground truth[/] (their XML is unreadable; "
                     f"mAP leaves them out): {escape(notes[0])}{more}")
    for mode, q in (report.get("quantized") or {}).items():
        found = q["agreement_with_float"]
        map_text = f", mAP {q['voc_map50']:.3f}" if q["voc_map50"] is not None else ""
        lines.append(f"int8 {mode}: {q['onnx']} {q['size_bytes'] / 1e6:.2f} MB, {q['ms_per_image']:.1f} ms, "
                     f"finds {found['float_detections_found']}/{found['float_detections']} float detections"
                     f"{map_text}")
    return lines
