"""``curate report RUN``: one static, self-contained HTML file describing an evaluated run.

Reads: ``RUN/eval.json`` (written by ``curate evaluate``; required), ``RUN/metrics.jsonl`` (else
``metrics.csv``) for the training curves, and, for the galleries, the evaluated dataset named in
eval.json with its per-box verdicts. Writes: ``RUN/report.html`` (or ``out``), every picture embedded
as a data: URI, no script and no network access, so it opens from disk on any machine.

Sections: summary cards, VOC and COCO tables, per-class AP, PR curves, size bins, confusion matrix
(heatmap + table), training curves, timing, anything else eval.json carries, the galleries.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
from pathlib import Path

from curate import report_plots
from curate.errors import CurateError
from curate.report_sections import STYLE, esc, fmt, image, note, section, table

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
REPORT_FILE = "report.html"
REQUIRED_FIELDS = ("dataset", "classes", "voc_map50_all_point", "voc_map50_11point", "voc_ap_per_class", "coco")
VOC_KEYS = (("voc_map50_all_point", "mAP (all-point)"), ("voc_map50_11point", "mAP (11-point)"))
COCO_ORDER = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large")
SHOWN_ELSEWHERE = {"run", "dataset", "split", "images", "eval_key", "pred_field", "matching", "iou_threshold",
                   "classes", *REQUIRED_FIELDS, "size_bins", "confusion", "pr_curves", "ms_per_image", "speed",
                   "views"}
SPEED_NAMES = {"params": "parameters", "weights_mb": "weights (MB)", "checkpoint_mb": "checkpoint file (MB)",
               "batch": "batch size N", "fps_batch1": "images per second, batch 1",
               "fps_batchN": "images per second, batch N"}
PNG, JPEG = "image/png", "image/jpeg"


def write_report(run_dir: Path, out: Path | None = None, gallery: int = 12) -> Path:
    """Write the HTML report of ``run_dir`` (to ``run_dir/report.html`` unless ``out``) and return its path.

    ``gallery`` is how many false positives and how many misses to show (0: no galleries, and the
    dataset is not opened)."""
    run_dir = Path(run_dir)
    report = load_eval(run_dir)
    history = load_history(run_dir)
    galleries, gallery_notes = _galleries(report, gallery) if gallery > 0 else ({}, [])
    page = render(report, history, galleries, gallery_notes, run_dir=run_dir)
    out = Path(out) if out else run_dir / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, out)  # a reader never sees half a report
    return out


def load_eval(run_dir: Path) -> dict:
    path = run_dir / EVAL_FILE
    fix = f"run `curate evaluate DATASET --model {run_dir}`"
    if not run_dir.is_dir():
        raise CurateError(f"{run_dir}: not a run folder; fix: pass runs/NAME written by `curate train`")
    if not path.is_file():
        raise CurateError(f"{path}: not found (the run was never evaluated); fix: {fix}")
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CurateError(f"{path}: unreadable ({exc}); fix: {fix}") from exc
    if not isinstance(report, dict):
        raise CurateError(f"{path}: expected a JSON object; fix: {fix}")
    for name in REQUIRED_FIELDS:
        if name not in report:
            raise CurateError(f"{path}: field {name!r} missing (written by an older curate?); fix: {fix}")
    return report


def load_history(run_dir: Path) -> list[dict]:
    """Per-epoch rows from metrics.jsonl, else metrics.csv (numbers parsed, empty cells dropped); [] if none."""
    jsonl, csv_path = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
    if jsonl.is_file():
        rows = []
        for number, line in enumerate(jsonl.read_text().splitlines(), 1):
            try:
                rows.append(json.loads(line)) if line.strip() else None
            except ValueError:
                log.warning("%s: line %d is not JSON (a run killed mid-write?); skipped", jsonl, number)
        return [r for r in rows if isinstance(r, dict) and "epoch" in r]
    if csv_path.is_file():
        with csv_path.open(newline="") as handle:
            return [{k: float(v) if k != "epoch" else int(v) for k, v in row.items() if v not in ("", None)}
                    for row in csv.DictReader(handle) if row.get("epoch")]
    return []


def _galleries(report: dict, count: int) -> tuple[dict, list[str]]:
    """Gallery tiles from the evaluated dataset, and notes on anything that kept them out."""
    import fiftyone as fo

    from curate.report_gallery import gallery_tiles

    name, key = report["dataset"], report.get("eval_key", "eval")
    if not fo.dataset_exists(name):
        return {}, [f"dataset {name!r} named in eval.json no longer exists: no galleries; fix: re-import it "
                    f"and run `curate evaluate {name} --model {report.get('run', 'RUN')}`"]
    dataset = fo.load_dataset(name)
    notes = []
    latest = dataset.info.get("curate_eval") or {}
    if latest.get("eval_key") == key and latest.get("run") != report.get("run"):
        notes.append(f"the verdicts '{key}' on dataset {name!r} now come from run {latest.get('run')!r}, "
                     f"not {report.get('run')!r}: the galleries show that later evaluation")
    tiles = gallery_tiles(dataset, split=report.get("split", ""), eval_key=key,
                          pred_field=report.get("pred_field", "predictions"), count=count)
    return tiles, notes


def render(report: dict, history: list[dict], galleries: dict, gallery_notes: list[str], *,
           run_dir: Path) -> str:
    parts = [
        ("summary", "Summary", _summary(report)),
        ("per-class", "Per-class AP", _per_class(report)),
        ("pr", "Precision-recall curves", _pr(report)),
        ("sizes", "AP and recall by box size", _sizes(report)),
        ("confusion", "Confusion matrix", _confusion(report)),
        ("training", "Training curves", _training(history)),
        ("timing", "Inference time", _timing(report)),
        ("other", "Other measurements", _other(report)),
        ("failures", "Failures", _failures(report, galleries, gallery_notes)),
    ]
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in parts)
    body = "".join(section(sid, title, content) for sid, title, content in parts)
    title = f"curate report: {Path(str(report.get('run', run_dir))).name}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"{_header(report, run_dir, title)}<nav>{nav}</nav><main>{body}</main></body></html>")


def _header(report: dict, run_dir: Path, title: str) -> str:
    facts = [("run", report.get("run", str(run_dir))), ("dataset", report["dataset"]),
             ("split", report.get("split") or "all usable samples"), ("images", report.get("images", "?")),
             ("eval key", report.get("eval_key", "eval")), ("IoU threshold", report.get("iou_threshold", "?")),
             ("matching", report.get("matching", "?")), ("classes", len(report["classes"]))]
    line = " · ".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in facts)
    made = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"<header><h1>{esc(title)}</h1><p>{line}</p><p>generated {esc(made)}</p></header>"


def _summary(report: dict) -> str:
    coco = report["coco"]
    cards = [("VOC mAP@IoU " + fmt(report.get("iou_threshold", 0.5)), report["voc_map50_all_point"]),
             ("COCO AP", coco.get("AP")), ("COCO AP50", coco.get("AP50")), ("AR100", coco.get("AR100"))]
    html_cards = "".join(f'<div class="card">{esc(k)}<b>{fmt(v)}</b></div>' for k, v in cards)
    voc = table("voc", ["metric", "value"], [[label, report[key]] for key, label in VOC_KEYS],
                caption=f"Pascal VOC (IoU {report.get('iou_threshold', 0.5)})")
    keys = [k for k in COCO_ORDER if k in coco] + [k for k in coco if k not in COCO_ORDER]
    coco_table = table("coco", ["metric", "value"], [[k, coco[k]] for k in keys],
                       caption="COCO (IoU 0.50:0.95 unless named; \u2014 = no boxes of that size)")
    return f'<div class="cards">{html_cards}</div><div class="cards">{voc}{coco_table}</div>'


def _per_class(report: dict) -> str:
    per_class = report["voc_ap_per_class"]
    rows = sorted(([name, per_class.get(name, -1.0)] for name in report["classes"]), key=lambda r: -r[1])
    return table("per-class-ap", ["class", "AP (VOC all-point)"], rows,
                 caption="worst classes last; \u2014 = no ground-truth boxes in this split")


def _pr(report: dict) -> str:
    curves = report.get("pr_curves")
    if not curves:
        return _missing("pr_curves", report)
    shown = len(curves) if len(curves) <= report_plots.MAX_PR_PANELS else report_plots.MAX_PR_PANELS
    text = f"precision at 101 recall levels (the envelope VOC integrates); {shown} of {len(curves)} classes"
    return note(text) + image(report_plots.pr_curves(curves, report["voc_ap_per_class"]), mime=PNG,
                              alt="precision-recall curve per class", image_id="pr-curves")


def _sizes(report: dict) -> str:
    bins = report.get("size_bins")
    if not bins:
        return _missing("size_bins", report)
    png = report_plots.size_bins(bins["labels"], bins["ap"], bins["recall"])
    rows = [[label, ap, recall] for label, ap, recall in zip(bins["labels"], bins["ap"], bins["recall"])]
    return (image(png, mime=PNG, alt="AP and recall per box-size bin", image_id="size-bins")
            + table("size-bins-table", ["box area (share of image)", "AP", "recall"], rows))


def _confusion(report: dict) -> str:
    confusion = report.get("confusion")
    if not confusion:
        return _missing("confusion", report)
    labels, matrix = confusion["labels"], confusion["matrix"]
    text = (f"rows: ground truth, columns: prediction (score \u2265 {confusion.get('score_threshold', '?')}); "
            f"the 'background' row holds detections of nothing, the column objects nobody detected; "
            f"wrong-class detections: {confusion.get('wrong_detections', '?')}")
    rows = [[label, *[int(v) for v in row]] for label, row in zip(labels, matrix)]
    return (note(text) + image(report_plots.confusion(labels, matrix), mime=PNG, alt="confusion matrix heatmap",
                               image_id="confusion-heatmap")
            + table("confusion-table", ["ground truth \\ predicted", *labels], rows))


def _training(history: list[dict]) -> str:
    if not history:
        return note("no metrics.jsonl or metrics.csv in the run folder: no training curves")
    last = history[-1]
    maps = [r for r in history if isinstance(r.get("map50"), (int, float))]
    best = max(maps, key=lambda r: r["map50"]) if maps else None
    rows = [["epochs", int(last["epoch"])], ["last train loss", float(last.get("train_loss", -1))]]
    if best:
        rows += [["best val mAP@0.5", float(best["map50"])], ["at epoch", int(best["epoch"])]]
    return (image(report_plots.training(history), mime=PNG, alt="training losses and val mAP per epoch",
                  image_id="training-curves") + table("training-table", ["", "value"], rows))


def _timing(report: dict) -> str:
    ms = report.get("ms_per_image")
    if not ms:
        return _missing("ms_per_image", report)
    names = {"preprocess": "preprocess (decode, resize, normalise)", "forward": "network forward",
             "postprocess": "decode boxes + NMS"}
    total = sum(float(v) for v in ms.values())
    rows = [[names.get(k, k), float(v)] for k, v in ms.items()] + [["total", total]]
    if total > 0:
        rows.append(["images per second (1000 / total)", 1000.0 / total])
    timing = table("timing-table", ["stage", "ms per image"], rows, caption="time split while evaluating")
    speed = report.get("speed") or {}
    if not speed:
        return timing
    speed_rows = [[SPEED_NAMES.get(k, k), v] for k, v in speed.items() if isinstance(v, (int, float))]
    return f'<div class="cards">{timing}{table("speed-table", ["", "value"], speed_rows, caption="speed and size")}</div>'


def _other(report: dict) -> str:
    """Whatever eval.json gained after this report was written (fps, model size, ...), shown as is."""
    rows = []
    for key, value in report.items():
        if key in SHOWN_ELSEWHERE:
            continue
        if isinstance(value, dict):
            rows += [[f"{key}.{k}", v if isinstance(v, (int, float, str)) else json.dumps(v)]
                     for k, v in value.items()]
        else:
            rows.append([key, value if isinstance(value, (int, float, str)) else json.dumps(value)])
    return table("other-table", ["key", "value"], rows) if rows else note("nothing else in eval.json")


def _failures(report: dict, galleries: dict, notes: list[str]) -> str:
    from curate.report_gallery import FALSE_POSITIVE_COLOUR, GT_COLOUR, MISSED_COLOUR, PREDICTION_COLOUR
    from curate.report_sections import gallery

    if not galleries and not notes:
        return note("galleries not requested (--gallery 0)")
    swatch = "".join(f'<span style="background:rgb{c}">{esc(t)}</span>' for t, c in (
        ("ground truth", GT_COLOUR), ("prediction \u2265 0.3", PREDICTION_COLOUR),
        ("false positive", FALSE_POSITIVE_COLOUR), ("missed object", MISSED_COLOUR)))
    parts = [note(n, kind="warning") for n in notes]
    views = report.get("views") or {}
    if views:
        parts.append(table("views-table", ["saved view (open with `curate review`)", "samples"],
                           [[name, int(n)] for name, n in views.items()]))
    parts.append(f'<p class="legend">{swatch} left: whole image, right: zoom on the failure</p>')
    if galleries:
        parts += ["<h3>Most confident false positives</h3>",
                  gallery("gallery-fp", galleries.get("fp", []), empty="no false positives"),
                  "<h3>Largest missed objects</h3>",
                  gallery("gallery-fn", galleries.get("fn", []), empty="no missed objects")]
    return "".join(parts)


def _missing(name: str, report: dict) -> str:
    return note(f"eval.json has no {name!r} (written by an older curate evaluate); fix: run `curate evaluate "
                f"{report['dataset']} --model {report.get('run', 'RUN')}` again")
