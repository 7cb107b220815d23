"""The stages of `curate run`, each a call into the module that does the work (ingest, clean, balance,
anchors, training, evaluate, report_html), with the recipe keys it reads named in one place.

Reads and writes what those modules do. Besides: ``DATA/clean/`` (clean's report and galleries),
``DATA/balance.json``, ``DATA/anchors.yaml`` + ``anchors.png`` (fitted anchors: the user's recipe is
never edited), ``RUN/pipeline-recipe.yaml`` (the recipe the trainer gets: dataset and fitted anchors
filled in). DATA is the run folder, or a sweep's folder shared by its variants.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from curate.errors import CurateError
from curate.fingerprint import folder_listing
from curate.recipe import Recipe, recipe_to_dict, with_overrides

log = logging.getLogger(__name__)

PIPELINE_RECIPE = "pipeline-recipe.yaml"
ANCHORS_FILE = "anchors.yaml"
TRAINING_OUTPUTS = ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "curves.png", "manifest.jsonl",
                    "eval.json")


@dataclass
class RunContext:
    recipe: Recipe
    recipe_path: Path
    run_dir: Path  # train / evaluate / report outputs
    data_dir: Path  # import / clean / balance / anchors outputs (a sweep shares them)
    progress: bool | None = None
    previous: dict = field(default_factory=dict)  # the running stage's last record
    fingerprint: str = ""  # the running stage's fingerprint
    forced: bool = False  # the running stage was forced (--force / --from): it starts afresh

    @property
    def dataset(self) -> str:
        return self.recipe.dataset


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Callable[[Recipe], dict]  # the recipe keys the stage reads
    run: Callable[[RunContext], dict]  # does the work, returns a summary (JSON-able)
    inputs: Callable[[RunContext], dict] = lambda ctx: {}  # what it reads besides the recipe
    off: Callable[[Recipe], str] = lambda recipe: ""  # why the stage has nothing to do ("" = it has)


def _sections(recipe: Recipe, *names: str) -> dict:
    data = recipe_to_dict(recipe)
    return {name: data[name] for name in names}


def _load_dataset(name: str):
    import fiftyone as fo

    if not name or not fo.dataset_exists(name):
        raise CurateError(f"dataset {name!r} not found; fix: add `sources:` to the recipe or "
                          f"`curate import FOLDER --name {name}`")
    return fo.load_dataset(name)


# import ------------------------------------------------------------------------------------------------

def _dataset_id(name: str) -> str | None:
    import fiftyone as fo

    return str(fo.load_dataset(name)._doc.id) if name and fo.dataset_exists(name) else None


def import_inputs(ctx: RunContext) -> dict:
    """Source files (names, sizes, mtimes) and the dataset's identity (a deleted and re-created dataset
    differs, so every later stage runs again)."""
    listings = []
    for i, source in enumerate(ctx.recipe.sources):
        for folder in (source.path, *source.images):
            path = Path(folder).expanduser()
            if not path.is_dir():
                raise CurateError(f"{ctx.recipe_path}: sources[{i}]: {folder!r} is not a folder (paths are "
                                  f"relative to {Path.cwd()}); fix: correct the path or create the data")
            listings.append({"folder": str(path.resolve()), **folder_listing(path)})
    return {"files": listings, "dataset_id": _dataset_id(ctx.dataset)}


def run_import(ctx: RunContext) -> dict:
    from curate.ingest import import_path

    if not ctx.recipe.sources:
        _load_dataset(ctx.dataset)
        return {"note": f"no sources in the recipe: dataset {ctx.dataset!r} used as it is"}
    totals = {}
    last = len(ctx.recipe.sources) - 1
    for i, source in enumerate(ctx.recipe.sources):
        summary = import_path(source.path, dataset_name=ctx.dataset, fmt=source.format,
                              source=source.source or None, on_error=source.on_error,
                              image_dirs=source.images, find_duplicates=i == last, progress=ctx.progress)
        for key, value in summary.totals().items():
            totals[key] = totals.get(key, 0) + value
    return totals


def import_settings(recipe: Recipe) -> dict:
    return _sections(recipe, "dataset", "sources")


# clean / balance -----------------------------------------------------------------------------------------

def run_clean_stage(ctx: RunContext) -> dict:
    from curate.clean import run_clean
    from curate.clean_report import write_clean_report

    dataset = _load_dataset(ctx.dataset)
    report = run_clean(dataset, ctx.recipe.clean, progress=ctx.progress)
    files = write_clean_report(dataset, report, ctx.data_dir / "clean")
    return {"samples": report.samples, "quarantined": report.quarantined, "findings": dict(report.counts),
            "classes_kept": report.classes_kept, "report": str(files[0]) if files else None}


def run_balance_stage(ctx: RunContext) -> dict:
    """Undo the previous selection, weights and negatives, then apply the recipe's (so a changed
    setting never leaves the old choice behind); split tags are data and stay unless ``resplit``."""
    from curate import balance

    b = ctx.recipe.balance
    dataset = _load_dataset(ctx.dataset)
    balance.undo_balance(dataset)
    table = balance.load_table(dataset)
    report = balance.BalanceReport(ctx.dataset, table.classes)
    fractions = dict(zip(balance.SPLITS, b.fractions))
    if b.split:
        report.split = balance.assign_splits(dataset, table, fractions, resplit=b.resplit, seed=b.seed)
    target = _target(b, table)
    if b.select:
        budget = _budget(b.select, table, b.budget_unit)
        report.selection = balance.select_balanced(dataset, table, budget=budget, budget_unit=b.budget_unit,
                                                   target=target, seed=b.seed)
    if b.weights:
        report.weights = balance.write_weights(dataset, table, target)
    if b.negatives_per_positive:
        report.negatives = balance.select_negatives(dataset, balance.load_table(dataset),
                                                    ratio=1 / b.negatives_per_positive, fractions=fractions,
                                                    seed=b.seed)
    balance.save_report(dataset, report)
    (ctx.data_dir / "balance.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    tags = dataset.count_sample_tags()
    return {"splits": {s: tags.get(s, 0) for s in balance.SPLITS},
            "selected": report.selection.get("images"), "negatives": report.negatives.get("selected")}


def _target(b, table):
    from curate.balance_opt import target_distribution

    totals = table.counts.sum(axis=0)
    if b.target == "weights":
        unknown = sorted(set(b.class_weights) - set(table.classes))
        if unknown:
            raise CurateError(f"balance.class_weights: unknown classes {unknown}; fix: use the dataset's "
                              f"classes {table.classes}")
        return target_distribution(totals, "weights",
                                   weights=[float(b.class_weights.get(c, 0)) for c in table.classes])
    if b.target == "tempered":
        return target_distribution(totals, "tempered", temperature=b.temperature)
    return target_distribution(totals, "uniform")


def _budget(select: float, table, unit: str) -> int:
    total = int((table.counts.sum(axis=1) > 0).sum()) if unit == "images" else int(table.counts.sum())
    return max(1, int(round(select * total))) if select <= 1 else int(select)


# anchors --------------------------------------------------------------------------------------------------

def anchors_settings(recipe: Recipe) -> dict:
    if not recipe.anchors.fit:
        return {"anchors": {"fit": False}}
    return {**_sections(recipe, "anchors", "model"), "data": {"train_split": recipe.data.train_split}}


def anchors_off(recipe: Recipe) -> str:
    return "" if recipe.anchors.fit else "anchors.fit is false: training uses the recipe's anchors"


def run_anchors_stage(ctx: RunContext) -> dict:
    from curate import anchors

    dataset = _load_dataset(ctx.dataset)
    sample = anchors.training_boxes(dataset, ctx.recipe.data.train_split)
    if not len(sample.labels):
        raise CurateError(f"{ctx.dataset}: no usable boxes in the training view; fix: check the import and "
                          "clean reports, or set anchors.fit: false")
    report, result = anchors.compare_and_fit(ctx.recipe, sample, fit=True, seed=ctx.recipe.anchors.fit_seed)
    path = ctx.data_dir / ANCHORS_FILE
    path.write_text(anchors.anchors_yaml(result.spec, report))
    report.written_to = str(path)
    anchors.record_on_dataset(dataset, report)
    png = anchors.scatter(sample, ctx.recipe, result.spec, ctx.data_dir / "anchors.png")
    coverage = {name: round(v["overall"]["coverage"], 3) for name, v in report.coverage.items()}
    return {"boxes": report.boxes, "coverage": coverage, "anchors": str(path), "plot": str(png)}


def fitted_anchors(data_dir: Path) -> dict:
    """The anchors stage's result as recipe overrides (``{"anchors.scales": [...], ...}``)."""
    path = data_dir / ANCHORS_FILE
    section = (yaml.safe_load(path.read_text()) or {}).get("anchors", {})
    return {f"anchors.{key}": value for key, value in section.items()}


# train / evaluate / report -------------------------------------------------------------------------------

def train_settings(recipe: Recipe) -> dict:
    return _sections(recipe, "dataset", "model", "anchors", "data", "augment", "loss", "train")


DATASET_SUMMARY = ("tags", "labels", "boxes")


def train_inputs(ctx: RunContext) -> dict:
    """A cheap summary of what the manifest is made of, so a change made outside `curate run` between two
    runs (`curate negatives --mine`, `curate clean --fix`, `curate labels --map`, ...) re-runs train:
    ``tags`` (sample tag -> count: splits, quarantine, the balanced selection, chosen negatives),
    ``labels`` (ground-truth label -> boxes) and ``boxes`` (the sum of every ground-truth box's
    coordinates, rounded: clipped or rescaled boxes). All three are None while the dataset is missing."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    from curate import schema

    if not ctx.dataset or not fo.dataset_exists(ctx.dataset):
        return dict.fromkeys(DATASET_SUMMARY)
    dataset = fo.load_dataset(ctx.dataset)
    aggregations = [fo.CountValues("tags")]
    if schema.GROUND_TRUTH in dataset.get_field_schema():
        aggregations += [fo.CountValues(f"{schema.GROUND_TRUTH}.detections.label"),
                         fo.Sum(f"{schema.GROUND_TRUTH}.detections[]", expr=F("bounding_box").sum())]
    tags, labels, boxes = [*dataset.aggregate(aggregations), {}, 0.0][:3]
    return {"tags": _counts(tags), "labels": _counts(labels), "boxes": round(float(boxes or 0.0), 6)}


def _counts(counts: dict) -> dict:
    """JSON-stable: string keys (a missing label counts as "None"), sorted."""
    return {str(key): int(value) for key, value in sorted(counts.items(), key=lambda kv: str(kv[0]))}


def training_recipe(ctx: RunContext) -> Recipe:
    overrides = fitted_anchors(ctx.data_dir) if ctx.recipe.anchors.fit else {}
    return with_overrides(ctx.recipe, overrides, where=str(ctx.data_dir / ANCHORS_FILE)) if overrides \
        else ctx.recipe


def resumable(ctx: RunContext) -> bool:
    """The same training was interrupted (or failed) and left a checkpoint to continue from, and the
    stage is not forced (a forced stage starts afresh)."""
    prev = ctx.previous
    return (not ctx.forced and prev.get("status") in ("running", "failed")
            and prev.get("fingerprint") == ctx.fingerprint
            and (ctx.run_dir / "last.pt").is_file() and (ctx.run_dir / "manifest.jsonl").is_file())


def run_train_stage(ctx: RunContext) -> dict:
    from curate.training import prepare_manifest, run_trainer

    resume = resumable(ctx)
    resumed_from = _epochs_logged(ctx.run_dir) if resume else 0
    recipe = training_recipe(ctx)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = ctx.run_dir / PIPELINE_RECIPE
    recipe_path.write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    if resume:
        _drop_partial_line(ctx.run_dir / "metrics.jsonl")  # the trainer appends: no row glued to half a row
    else:
        for name in TRAINING_OUTPUTS:  # a fresh run: metrics.jsonl is appended to, so start it empty
            (ctx.run_dir / name).unlink(missing_ok=True)
    manifest, _ = prepare_manifest(recipe, ctx.dataset, ctx.run_dir, reuse=resume)
    show = sys.stderr.isatty() if ctx.progress is None else ctx.progress
    code = run_trainer(recipe_path, manifest, ctx.run_dir, resume=resume, progress=show)
    if code:
        raise CurateError(f"training stopped (exit code {code}; its error is above); fix: correct it and run "
                          f"the same command again: training resumes from {ctx.run_dir / 'last.pt'}")
    return {**training_summary(ctx.run_dir), "resumed": resume, "resumed_from": resumed_from}


def metric_rows(run_dir: Path) -> list[dict]:
    """The rows of ``metrics.jsonl``; a line that is not a JSON object (a run killed mid-write) is
    skipped, as curate/report_html.py's ``load_history`` does."""
    path = run_dir / "metrics.jsonl"
    rows = []
    for number, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s: line %d is not JSON (a run killed mid-write?); skipped", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _drop_partial_line(path: Path) -> None:
    """Cut what follows the last newline (half a row written when the run was killed)."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


def _epochs_logged(run_dir: Path) -> int:
    return len(metric_rows(run_dir))


def training_summary(run_dir: Path) -> dict:
    rows = metric_rows(run_dir)
    validated = [r for r in rows if "map50" in r]
    speeds = [r["images_per_second"] for r in rows if r.get("images_per_second")]
    return {"epochs": len(rows), "train_loss": rows[-1].get("train_loss") if rows else None,
            "best_val_map50": max((r["map50"] for r in validated), default=None),
            "eval_minus_train_loss": validated[-1].get("eval_minus_train_loss") if validated else None,
            "images_per_second": sum(speeds) / len(speeds) if speeds else None}


def evaluate_settings(recipe: Recipe) -> dict:
    return {**_sections(recipe, "evaluate"),
            "train": {"score_threshold": recipe.train.score_threshold, "nms_iou": recipe.train.nms_iou}}


def run_evaluate_stage(ctx: RunContext) -> dict:
    from curate.evaluate import evaluate_dataset

    ev, t = ctx.recipe.evaluate, ctx.recipe.train
    result = evaluate_dataset(_load_dataset(ctx.dataset), ctx.run_dir, split=ev.split, iou_threshold=ev.iou,
                              score_threshold=t.score_threshold, nms_iou=t.nms_iou)
    coco = result["coco"]
    return {"split": ev.split, "images": result["images"], "voc_map50": result["voc_map50_all_point"],
            "coco_ap": coco.get("AP"), "ar100": coco.get("AR100"), "eval_json": str(ctx.run_dir / "eval.json")}


def report_off(recipe: Recipe) -> str:
    try:
        import curate.report_html  # noqa: F401
    except ImportError:
        return "curate.report_html is not available in this version: no HTML report (eval.json is written)"
    return ""


def run_report_stage(ctx: RunContext) -> dict:
    from curate.report_html import write_report

    return {"report": str(write_report(ctx.run_dir))}
