"""``curate sweep RECIPE --set train.lr=0.02,0.04 --set loss.neg_pos_ratio=3,5``: the cartesian product of
the values, each variant a recipe override checked like a recipe file, trained and evaluated in its own
folder after the data stages ran once for all of them.

Reads: the recipe and its data (through curate/pipeline.py). Writes: ``SWEEP/pipeline.json`` and the data
stages' outputs (shared), ``SWEEP/<variant>/`` (a run folder with its own pipeline.json, so a finished
variant is skipped when the sweep runs again), and the comparison (curate/sweep_report.py).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from curate import pipeline_stages as ps
from curate.errors import CurateError
from curate.fingerprint import digest
from curate.pipeline import DATA_STAGES, MODEL_STAGES, STAGES, Decision, Pipeline
from curate.pipeline_state import PipelineState
from curate.recipe import Recipe, with_overrides

SHARED_SECTIONS = ("version", "name", "dataset", "sources", "clean", "balance")  # read by the shared stages
FITTED_ANCHOR_INPUTS = ("anchors", "model", "data.train_split")  # what `anchors.fit` fits from


@dataclass
class Variant:
    name: str
    settings: dict  # dotted key -> value, as given to --set
    recipe: Recipe


@dataclass
class VariantResult:
    variant: Variant
    run_dir: Path
    decisions: list[Decision] = field(default_factory=list)


def parse_set(option: str) -> tuple[str, list]:
    """``"train.lr=0.02,0.04"`` -> ``("train.lr", [0.02, 0.04])``; values are YAML (``[64, 64]`` is one
    value: commas inside brackets do not split)."""
    key, sep, text = option.partition("=")
    if not sep or not key.strip() or not text.strip():
        raise CurateError(f"--set {option!r}: write KEY=VALUE[,VALUE...]; fix: e.g. --set train.lr=0.02,0.04")
    values = []
    for part in _split_top_level(text):
        try:
            value = yaml.safe_load(part)
        except yaml.YAMLError as exc:
            raise CurateError(f"--set {option!r}: {part!r} is not a value ({exc}); fix: e.g. 0.02, true, [64, 64]")
        if value not in values:
            values.append(value)
    return key.strip(), values


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()]


def check_sweepable(key: str, recipe: Recipe) -> None:
    """The data stages run once for all variants (one dataset), so their keys cannot vary."""
    shared = key.split(".")[0] in SHARED_SECTIONS
    fitted = recipe.anchors.fit and any(key == k or key.startswith(k + ".") for k in FITTED_ANCHOR_INPUTS)
    if key == "anchors.fit" or shared or fitted:
        why = ("anchors are fitted once from the model settings (anchors.fit: true)" if fitted
               else "the variants share one dataset, prepared once by import, clean and balance")
        raise CurateError(f"--set {key}: {why}; fix: sweep train/loss/augment/model/data/evaluate keys"
                          + (" with anchors.fit: false" if fitted else "")
                          + ", or `curate run` one recipe per value (each with its own `dataset:`)")


def make_variants(recipe: Recipe, sets: list[tuple[str, list]], *, epochs: int | None = None) -> list[Variant]:
    if not sets:
        raise CurateError("nothing to sweep; fix: --set KEY=V1,V2 (e.g. --set train.lr=0.02,0.04)")
    for key, values in sets:
        check_sweepable(key, recipe)
        if epochs and _sets_epochs(key, values):
            raise CurateError(f"--epochs {epochs} and --set {key}=... both set train.epochs; fix: keep "
                              "one (--set train.epochs=... to sweep it, --epochs N for every variant)")
    keys = [key for key, _ in sets]
    variants = []
    for values in itertools.product(*(v for _, v in sets)):
        settings = dict(zip(keys, values))
        overrides = {**settings, **({"train.epochs": epochs} if epochs else {})}
        variants.append(Variant(variant_name(settings), settings, with_overrides(recipe, overrides)))
    _unique_names(variants)
    return variants


def _sets_epochs(key: str, values: list) -> bool:
    return key == "train.epochs" or (key == "train" and any(isinstance(v, dict) and "epochs" in v
                                                            for v in values))


MAX_NAME = 100  # characters before the hash: far below a file system's 255


def variant_name(settings: dict) -> str:
    """A folder name that says the settings: ``lr-0.02_neg_pos_ratio-3``. When characters had to be left
    out (``a/b`` -> ``ab``) or the name is longer than MAX_NAME, it is cut to MAX_NAME and ends with a
    short hash of the settings (``name-1a2b3c4d``), so it stays unique and a valid folder name; it
    depends only on these settings, so a re-run finds the same folder."""
    leaves = [k.split(".")[-1] for k in settings]
    parts = []
    for (key, value), leaf in zip(settings.items(), leaves):
        label = leaf if leaves.count(leaf) == 1 else key.replace(".", "_")
        text = "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{label}-{text}")
    raw = "_".join(parts)
    name = re.sub(r"[^A-Za-z0-9._-]+", "", raw)
    return _with_hash(name, settings) if name != raw or len(name) > MAX_NAME else name


def _with_hash(name: str, settings: dict) -> str:
    return f"{name[:MAX_NAME]}-{digest(settings)[:8]}"


def _unique_names(variants: list[Variant]) -> None:
    """Different settings written the same way (``[1, 2]`` and ``"1x2"``, or names that differ only in
    case, one folder on macOS and Windows) get their hash too."""
    seen: dict[str, int] = {}
    for variant in variants:
        seen[variant.name.lower()] = seen.get(variant.name.lower(), 0) + 1
    for variant in variants:
        if seen[variant.name.lower()] > 1:
            variant.name = _with_hash(variant.name, variant.settings)


def run_sweep(recipe: Recipe, recipe_path: Path, out: Path, variants: list[Variant], *,
              progress: bool | None = None, on_stage: Callable = lambda d: None,
              on_done: Callable = lambda d: None, on_variant: Callable = lambda v, i, n: None,
              ) -> tuple[list[Decision], list[VariantResult]]:
    """The data stages once in ``out``, then each variant's train / evaluate / report in ``out/NAME``."""
    if not recipe.dataset:
        raise CurateError(f"{recipe_path}: no `dataset:`; fix: name the FiftyOne dataset the stages work on")
    shared_ctx = ps.RunContext(recipe, Path(recipe_path), out, out, progress=progress)
    shared = Pipeline(shared_ctx, PipelineState.load(out), stages=_stages(DATA_STAGES), on_stage=on_stage,
                      on_done=on_done)
    data = shared.run()
    results = []
    for i, variant in enumerate(variants):
        on_variant(variant, i, len(variants))
        run_dir = out / variant.name
        ctx = ps.RunContext(variant.recipe, Path(recipe_path), run_dir, out, progress=progress)
        pipeline = Pipeline(ctx, PipelineState.load(run_dir), stages=_stages(MODEL_STAGES),
                            upstream=data[-1].fingerprint, upstream_name="the shared data stages",
                            on_stage=on_stage, on_done=on_done)
        results.append(VariantResult(variant, run_dir, pipeline.run()))
    return data, results


def _stages(names: tuple[str, ...]):
    return tuple(s for s in STAGES if s.name in names)
