"""``curate run RECIPE``: import -> clean -> balance -> anchors -> train -> evaluate -> report, each stage
skipped when what it reads is unchanged since its last successful run.

Reads: the recipe, the sources' files, the dataset. Writes: what each stage writes
(curate/pipeline_stages.py) and ``RUN/pipeline.json`` (curate/pipeline_state.py).

A stage's fingerprint hashes exactly three things:

- the recipe keys it reads (``Stage.settings``);
- the fingerprint of the stage before it;
- its inputs from outside the recipe (``Stage.inputs``): for import, each source (and ``images``) folder's
  file listing — relative name, size and mtime of every file, links not followed, as the import walks
  them — plus the dataset's id; for train, a summary of the dataset the manifest is made of: sample tag
  counts, ground-truth label counts and the sum of the box coordinates. The other stages have none.

So the dataset's content is seen only through import's file listing and train's summary: a change made
outside `curate run` (`curate negatives --mine`, `curate clean --fix`, `curate labels --map`) re-runs
train, evaluate and report, never clean or balance. A stage runs when its fingerprint differs from the one
recorded after its last successful run, when it never finished, or when forced (a forced train starts
afresh, never from ``last.pt``). Since every fingerprint includes the one before it, a change re-runs that
stage and every later one — unless the re-run stage ends with the same fingerprint (e.g. ``--force clean``
with nothing changed), in which case the later stages stay skipped.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from curate import pipeline_stages as ps
from curate.errors import CurateError
from curate.fingerprint import changed_settings, digest
from curate.pipeline_state import PipelineState
from curate.recipe import Recipe

STAGES = (
    ps.Stage("import", ps.import_settings, ps.run_import, inputs=ps.import_inputs),
    ps.Stage("clean", lambda r: ps._sections(r, "clean"), ps.run_clean_stage),
    ps.Stage("balance", lambda r: ps._sections(r, "balance"), ps.run_balance_stage),
    ps.Stage("anchors", ps.anchors_settings, ps.run_anchors_stage, off=ps.anchors_off),
    ps.Stage("train", ps.train_settings, ps.run_train_stage, inputs=ps.train_inputs),
    ps.Stage("evaluate", ps.evaluate_settings, ps.run_evaluate_stage),
    ps.Stage("report", lambda r: {}, ps.run_report_stage, off=ps.report_off),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
DATA_STAGES = STAGE_NAMES[:4]  # they change the dataset: a sweep runs them once for all variants
MODEL_STAGES = STAGE_NAMES[4:]


@dataclass
class Decision:
    stage: str
    action: str  # run | skip | off
    reason: str
    fingerprint: str
    settings: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    seconds: float = 0.0  # this run's time (run), or the recorded one (skip)
    summary: dict = field(default_factory=dict)


def check_stage_names(names: Iterable[str], option: str) -> None:
    for name in names:
        if name not in STAGE_NAMES:
            close = difflib.get_close_matches(name, STAGE_NAMES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CurateError(f"{option} {name}: not a stage; fix: {hint}stages are {', '.join(STAGE_NAMES)}")


def forced_stages(force: Iterable[str] = (), start: str | None = None) -> set[str]:
    """``--force`` names stages; ``--from`` forces that stage and every later one."""
    force = set(force)
    check_stage_names(force, "--force")
    if start:
        check_stage_names([start], "--from")
        force |= set(STAGE_NAMES[STAGE_NAMES.index(start):])
    return force


def decide(stage: ps.Stage, ctx: ps.RunContext, record: dict, upstream: str, forced: bool,
           before: str = "an earlier stage") -> Decision:
    settings = stage.settings(ctx.recipe)
    off = stage.off(ctx.recipe)
    inputs = {} if off else stage.inputs(ctx)
    fingerprint = digest({"stage": stage.name, "settings": settings, "inputs": inputs, "upstream": upstream})
    if off:
        return Decision(stage.name, "off", off, fingerprint, settings, inputs)
    reason = _why_run(record, settings, inputs, upstream, fingerprint, forced, before)
    ctx.fingerprint, ctx.forced = fingerprint, forced
    if reason and stage.name == "train" and ps.resumable(ctx):
        reason += f"; training resumes from last.pt (epoch {len(ps.metric_rows(ctx.run_dir))} logged)"
    if reason:
        return Decision(stage.name, "run", reason, fingerprint, settings, inputs)
    return Decision(stage.name, "skip", f"unchanged since {record.get('finished_at', '?')}", fingerprint,
                    settings, inputs, seconds=record.get("seconds", 0.0), summary=record.get("summary", {}))


def _why_run(record: dict, settings, inputs, upstream, fingerprint, forced: bool, before: str) -> str:
    if forced:
        return "forced"
    if not record:
        return "never ran"
    if record.get("status") == "running":
        return "interrupted last time (killed or crashed)"
    if record.get("status") != "done":
        return f"failed last time ({record.get('error')})"
    if record.get("fingerprint") == fingerprint:
        return ""
    changes = changed_settings(record.get("settings", {}), settings)
    if changes:
        return "changed setting: " + "; ".join(changes)
    if record.get("inputs") != inputs:
        return _inputs_changed(record.get("inputs", {}), inputs)
    if record.get("upstream") != upstream:
        return f"input from {before} changed"
    return "fingerprint changed"


def _inputs_changed(old: dict, new: dict) -> str:
    summary = [key for key in ps.DATASET_SUMMARY if key in new and old.get(key) != new.get(key)]
    if summary:
        if not any(key in old for key in ps.DATASET_SUMMARY):
            return "dataset changed: " + "/".join(summary) + " (not recorded by the last run)"
        return "dataset changed: " + "; ".join(_summary_change(key, old.get(key), new.get(key))
                                                for key in summary)
    if old.get("dataset_id") != new.get("dataset_id"):
        return "dataset missing or re-created" if new.get("dataset_id") is None or old.get("dataset_id") \
            else "dataset not imported yet"
    before = sum(f["files"] for f in old.get("files", []))
    after = sum(f["files"] for f in new.get("files", []))
    if after != before:
        return f"source files: {after} (was {before})"
    return "source files changed (sizes or times)"


def _summary_change(key: str, old, new, limit: int = 3) -> str:
    """``tags hard_negative 0 -> 12, negative_selected 0 -> 12`` (at most ``limit`` named)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return key if key != "boxes" else "boxes (coordinates edited)"
    changes = [f"{name} {old.get(name, 0)} -> {new.get(name, 0)}" for name in sorted(set(old) | set(new))
               if old.get(name, 0) != new.get(name, 0)]
    if len(changes) > limit:
        changes = changes[:limit] + [f"and {len(changes) - limit} more"]
    return f"{key} " + ", ".join(changes)


@dataclass
class Pipeline:
    """Runs ``stages`` in order with their state in ``state``; ``upstream`` is the fingerprint of the
    stage before the first one (a sweep's variants start after its shared data stages)."""

    ctx: ps.RunContext
    state: PipelineState
    stages: tuple[ps.Stage, ...] = STAGES
    forced: set[str] = field(default_factory=set)
    upstream: str = ""
    on_stage: Callable[[Decision], None] = lambda decision: None  # called when a stage starts
    on_done: Callable[[Decision], None] = lambda decision: None  # called when it ran, was skipped or off

    upstream_name: str = "an earlier stage"

    def plan(self) -> list[Decision]:
        """What ``run`` would do, without doing it (``--dry-run``): each stage's action and reason,
        assuming a stage that runs keeps the fingerprint it has now."""
        return self.run(execute=False)

    def run(self, *, execute: bool = True) -> list[Decision]:
        decisions, upstream, before = [], self.upstream, self.upstream_name
        for stage in self.stages:
            decision = decide(stage, self._ctx_for(stage), self.state.record(stage.name), upstream,
                              stage.name in self.forced, before)
            before = stage.name
            if not execute:
                decisions.append(decision)
                upstream = decision.fingerprint
                continue
            if decision.action == "run":
                self.on_stage(decision)
                decision = self._execute(stage, decision, upstream)
            self.on_done(decision)
            decisions.append(decision)
            upstream = decision.fingerprint
        return decisions

    def _ctx_for(self, stage: ps.Stage) -> ps.RunContext:
        self.ctx.previous = self.state.record(stage.name)
        return self.ctx

    def _execute(self, stage: ps.Stage, decision: Decision, upstream: str) -> Decision:
        self.ctx.fingerprint = decision.fingerprint
        self.state.mark_running(stage.name, fingerprint=decision.fingerprint, settings=decision.settings,
                                inputs=decision.inputs, upstream=upstream)
        start = time.perf_counter()
        try:
            summary = stage.run(self.ctx)
        except BaseException as exc:  # KeyboardInterrupt too: the record says where to start again
            self.state.mark_failed(stage.name, f"{type(exc).__name__}: {exc}"[:500])
            raise
        decision.seconds = time.perf_counter() - start
        decision.summary = summary
        decision.inputs = {**decision.inputs, **_identity(stage, self.ctx)}  # a first import creates the
        decision.fingerprint = digest({"stage": stage.name, "settings": decision.settings,  # dataset
                                       "inputs": decision.inputs, "upstream": upstream})
        self.state.mark_done(stage.name, fingerprint=decision.fingerprint, inputs=decision.inputs,
                             seconds=round(decision.seconds, 2), summary=summary)
        if summary.get("resumed"):
            decision.reason += f" (resumed from epoch {summary['resumed_from']})"
        return decision


def _identity(stage: ps.Stage, ctx: ps.RunContext) -> dict:
    """After import: the dataset's id now (a first import creates it); the file listing stays the one
    taken before, so a file added during the import is seen by the next run."""
    return {"dataset_id": ps._dataset_id(ctx.dataset)} if stage.name == "import" else {}


def make_pipeline(recipe: Recipe, recipe_path: Path, run_dir: Path, *, forced: set[str] = frozenset(),
                  progress: bool | None = None, **callbacks) -> Pipeline:
    if not recipe.dataset:
        raise CurateError(f"{recipe_path}: no `dataset:`; fix: name the FiftyOne dataset the stages work on")
    ctx = ps.RunContext(recipe, Path(recipe_path), Path(run_dir), Path(run_dir), progress=progress)
    return Pipeline(ctx, PipelineState.load(Path(run_dir)), forced=set(forced), **callbacks)


def default_run_dir(recipe: Recipe, recipe_path: Path) -> Path:
    return Path("runs") / (recipe.name or Path(recipe_path).stem)
