"""Recipes: one YAML file describes a run. Frozen dataclasses + one loader.

* ``yaml.safe_load`` only; a ``version:`` key (``RECIPE_VERSION``); ``base: other.yaml`` inherits, with
  this file's keys overriding section by section (nested dicts merge, lists replace).
* Unknown keys are rejected with a "did you mean" suggestion; types and ranges are checked. Every key is
  a dataclass field whose comment documents its type and meaning (``curate recipe --explain`` prints them).
* Sections are turned into keyword arguments in one place each (``dataclasses.asdict(recipe.clean)``).

Sections land with their stages; each is optional in a file and has defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path

import yaml

from curate.errors import CurateError

RECIPE_VERSION = 1
MAX_BASE_DEPTH = 8  # base: chains deeper than this are a loop or a mistake


class RecipeError(CurateError):
    pass


@dataclasses.dataclass(frozen=True)
class CleanSection:
    """Thresholds of `curate clean`'s rules (curate/clean_rules.py names each rule)."""

    min_box_pixels: float = 2.0  # px: a box side below this is `tiny_box` (nothing can learn it)
    min_box_relative: float = 0.01  # fraction of the image side: sqrt(area) below this is `tiny_box`
    outside_tolerance_pixels: float = 2.0  # px: a box edge further outside the image is `box_outside_image`
    duplicate_box_iou: float = 0.9  # same-label boxes overlapping above this are `duplicate_box`
    whole_image_fraction: float = 0.95  # a box covering more of the image area is `box_covers_image`
    size_mismatch_tolerance: float = 0.01  # relative: declared vs real size differing more is a mismatch
    top_k: int = 0  # keep the K most frequent classes (0: all)
    min_instances: int = 0  # keep classes with at least this many boxes (0: all)

    _ranges = {"min_box_pixels": (0, 1e4), "min_box_relative": (0, 1), "outside_tolerance_pixels": (0, 1e4),
               "duplicate_box_iou": (0, 1), "whole_image_fraction": (0, 1),
               "size_mismatch_tolerance": (0, 1), "top_k": (0, 1e9), "min_instances": (0, 1e9)}


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The detector: trainer.model.build_ssd's arguments."""

    backbone: str = "mobilenet_v2"  # vgg16 | mobilenet_v1 | mobilenet_v2 | mobilenet_v2_fpn | mobilenet_v3_large | tiny
    width_mult: float = 1.0  # MobileNet v1 width multiplier, 0.25..1.0
    image_size: tuple[int, ...] = (300, 300)  # network input (height, width) in pixels
    resize_mode: str = "stretch"  # stretch (SSD's plain resize) | letterbox (keep aspect, pad with mean)
    head: str = ""  # ssd | ssdlite; "" = the backbone's default
    pretrained: str = ""  # "" = none | imagenet (torchvision, needs internet) | path to a state dict

    _ranges = {"width_mult": (0.25, 1.0)}
    _choices = {"backbone": ("vgg16", "mobilenet_v1", "mobilenet_v2", "mobilenet_v2_fpn",
                             "mobilenet_v3_large", "tiny"),
                "resize_mode": ("stretch", "letterbox"), "head": ("", "ssd", "ssdlite")}


@dataclasses.dataclass(frozen=True)
class AnchorsSection:
    """SSD default boxes in trainer.priors.AnchorSpec's form; `curate anchors --fit` writes them."""

    scales: tuple[float, ...] = ()  # L + 1 sizes relative to the input height; () = the backbone default
    aspect_ratios: tuple[tuple[float, ...], ...] = ()  # per layer, explicit w/h ratios
    extra_square: bool = True  # add a sqrt(s_k * s_k+1) square box per location (SSD paper)
    fit: bool = False  # `curate run`: fit scales and ratios to the training boxes before training
    fit_seed: int = 0  # k-means seed of that fit (`curate anchors --fit --seed`)


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Which samples the training manifest holds."""

    train_split: str = "train"  # sample tag of the training images
    val_split: str = "val"  # sample tag of the validation images ("" = no validation)
    classes: tuple[str, ...] = ()  # class order; () = the classes kept by `curate clean`, else all, sorted


@dataclasses.dataclass(frozen=True)
class AugmentSection:
    """trainer.augment.build_augmentation's preset and settings (unknown settings are refused there)."""

    preset: str = "ssd"  # none | light | ssd
    settings: dict = dataclasses.field(default_factory=dict)  # AugmentationSettings overrides

    _choices = {"preset": ("none", "light", "ssd")}


@dataclasses.dataclass(frozen=True)
class LossSection:
    """trainer.loss.MultiBoxLoss: total = (cls_sum + loc_weight * loc_sum) / max(num_pos, 1)."""

    neg_pos_ratio: float = 3.0  # hard negatives kept per positive
    n_neg_min: int = 0  # negatives kept even with no positive (background-only images still teach)
    mining: str = "per_image"  # per_image | batch | none (all negatives: the seeds' ablation)
    loc_weight: float = 1.0  # weight of the localisation term
    class_weighting: str = "none"  # none | inverse_frequency | inverse_frequency_positives
    focal_gamma: float = 0.0  # > 0: focal loss; 0 = cross-entropy
    iou_threshold: float = 0.5  # a default box with IoU >= this with a ground truth is a positive

    _ranges = {"neg_pos_ratio": (0, 1000), "n_neg_min": (0, 1e6), "loc_weight": (0, 1000),
               "focal_gamma": (0, 10), "iou_threshold": (0.05, 0.95)}
    _choices = {"mining": ("per_image", "batch", "none"),
                "class_weighting": ("none", "inverse_frequency", "inverse_frequency_positives")}


@dataclasses.dataclass(frozen=True)
class TrainSection:
    """The training loop (trainer/run.py)."""

    epochs: int = 20  # passes over the training split
    batch_size: int = 16  # images per step (per process under torchrun)
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01  # peak learning rate
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 penalty on the weights (decoupled for adamw)
    scheduler: str = "cosine"  # cosine | step | constant
    step_milestones: tuple[int, ...] = ()  # epochs where `step` multiplies the lr by step_gamma
    step_gamma: float = 0.1  # lr factor at each of step_milestones
    warmup_epochs: float = 0.0  # linear warm-up from lr / 10 over this many epochs
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    amp: bool = True  # mixed precision and channels-last on CUDA (ignored on CPU)
    val_every: int = 1  # validate every N epochs
    best_metric: str = "map50"  # map50 | val_loss: what makes a checkpoint `best`
    early_stop_patience: int = 0  # validations without improvement before stopping; 0 = never
    workers: int = 2  # DataLoader worker processes
    seed: int = 0  # initialisation, shuffling and augmentation (a resumed run reproduces this one)
    trainable_last_n: int = -1  # train only the last N backbone layers (+ extras and head); -1 = all
    init_from: str = ""  # fine-tune from a previous run's checkpoint (classes may differ)
    device: str = "auto"  # auto | cpu | cuda
    score_threshold: float = 0.01  # detections kept for validation mAP
    nms_iou: float = 0.45  # IoU above which NMS drops the lower-scored of two same-class detections

    _ranges = {"epochs": (1, 100000), "batch_size": (1, 4096), "lr": (0, 10), "momentum": (0, 1),
               "weight_decay": (0, 1), "step_gamma": (0, 1), "warmup_epochs": (0, 1000),
               "grad_clip": (0, 1e6), "val_every": (1, 1000), "early_stop_patience": (0, 100000),
               "workers": (0, 64), "score_threshold": (0, 1), "nms_iou": (0, 1)}
    _choices = {"optimizer": ("sgd", "adam", "adamw"), "scheduler": ("cosine", "step", "constant"),
                "best_metric": ("map50", "val_loss"), "device": ("auto", "cpu", "cuda")}


@dataclasses.dataclass(frozen=True)
class SourceSection:
    """One folder `curate import` reads (curate/ingest.py `import_path`); a bare string is its `path`."""

    path: str = ""  # folder to import, relative to the working directory (required)
    format: str = "auto"  # auto (detected, the reason printed) | one reader of `curate formats`
    source: str = ""  # each sample's `source`; "" = the folder's name (or each subfolder's)
    images: tuple[str, ...] = ()  # extra folders holding the annotations' images (`--images`)
    on_error: str = "skip"  # skip: list bad files in the import report and go on | fail: stop at the first

    _shorthand = "path"
    _choices = {"on_error": ("skip", "fail")}

    def _check(self, where: str) -> None:
        if not self.path:
            raise RecipeError(f"{where}: a source needs `path`; fix: `sources: [{{path: my_labels/}}]`")


@dataclasses.dataclass(frozen=True)
class BalanceSection:
    """`curate balance`'s settings (curate/balance.py): split, KL selection, weights, negatives."""

    split: bool = True  # tag stratified train/val/test splits (duplicate groups kept in one split)
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)  # train, val, test shares of the images; sum to 1
    resplit: bool = False  # ignore existing split tags (VOC ImageSets) instead of keeping them
    select: float = 0.0  # train on the subset closest to `target`: a fraction (<= 1) or a count (> 1); 0 = all
    budget_unit: str = "images"  # images | instances: what `select` counts
    target: str = "uniform"  # uniform | tempered (q ~ n^temperature) | weights (class_weights)
    temperature: float = 0.5  # the `tempered` target's exponent: 0 = uniform, 1 = the data as it is
    class_weights: dict = dataclasses.field(default_factory=dict)  # `weights` target: class -> weight
    weights: bool = False  # write sample_weight so weighted sampling matches `target` (nothing dropped)
    negatives_per_positive: float = 0.0  # background-only images chosen per positive image; 0 = none
    seed: int = 0  # seed of the split, the selection and the negatives

    _ranges = {"select": (0, 1e9), "temperature": (0, 10), "negatives_per_positive": (0, 100)}
    _choices = {"budget_unit": ("images", "instances"), "target": ("uniform", "tempered", "weights")}

    def _check(self, where: str) -> None:
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise RecipeError(f"{where}: fractions {list(self.fractions)} must be three non-negative shares "
                              "summing to 1; fix: `fractions: [0.8, 0.1, 0.1]` (train, val, test)")
        if self.target == "weights" and not self.class_weights:
            raise RecipeError(f"{where}: target `weights` needs class_weights; fix: `class_weights: "
                              "{cat: 1.0, dog: 2.0}` or `target: uniform`")
        bad = {k: v for k, v in self.class_weights.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0}
        if bad:
            raise RecipeError(f"{where}: class_weights {bad} are not non-negative numbers; fix: `class: 1.0`")


@dataclasses.dataclass(frozen=True)
class EvaluateSection:
    """`curate evaluate` after training (curate/evaluate.py)."""

    split: str = "test"  # sample tag to evaluate ("" = every usable sample)
    iou: float = 0.5  # IoU at which a detection matches a ground truth (VOC rule)

    _ranges = {"iou": (0.05, 0.95)}


@dataclasses.dataclass(frozen=True)
class Recipe:
    version: int = RECIPE_VERSION  # recipe format version (this curate reads RECIPE_VERSION)
    name: str = ""  # a short name for the run (reports, sweeps)
    dataset: str = ""  # FiftyOne dataset the stages work on
    sources: tuple[SourceSection, ...] = ()  # folders `curate run` imports into `dataset` (none: use it as is)
    clean: CleanSection = CleanSection()
    balance: BalanceSection = BalanceSection()
    model: ModelSection = ModelSection()
    anchors: AnchorsSection = AnchorsSection()
    data: DataSection = DataSection()
    augment: AugmentSection = AugmentSection()
    loss: LossSection = LossSection()
    train: TrainSection = TrainSection()
    evaluate: EvaluateSection = EvaluateSection()

    def to_dict(self) -> dict:
        return recipe_to_dict(self)


def load_recipe(path: str | Path) -> Recipe:
    data = _load_with_bases(Path(path), depth=0)
    return _build(Recipe, data, str(path))


def _load_with_bases(path: Path, depth: int) -> dict:
    if depth > MAX_BASE_DEPTH:
        raise RecipeError(f"{path}: `base:` chain deeper than {MAX_BASE_DEPTH} (a loop?)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc}); fix: check the path and YAML syntax")
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections; fix: start with `version: 1`")
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(_load_with_bases((path.parent / str(base)).resolve(), depth + 1), data)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(cls, data: dict, where: str):
    shorthand = getattr(cls, "_shorthand", None)
    if shorthand and isinstance(data, str):
        data = {shorthand: data}
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            raise RecipeError(f"{where}: unknown key {key!r}{hint}")
        values[key] = _convert(hints[key], value, f"{where}: {key}")
        _check_range(cls, key, values[key], f"{where}: {key}")
    if values.get("version", RECIPE_VERSION) != RECIPE_VERSION:
        raise RecipeError(f"{where}: version {values['version']} is not supported (this curate reads "
                          f"version {RECIPE_VERSION})")
    built = cls(**values)
    if hasattr(built, "_check"):
        built._check(where)  # rules across keys (fractions sum to 1, a required path)
    return built


def _convert(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if hint is dict and isinstance(value, dict):
        return dict(value)
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        (inner, *_) = typing.get_args(hint)
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    raise RecipeError(f"{where}: {value!r} is not a {getattr(hint, '__name__', hint)}")


def _check_range(cls, key: str, value, where: str) -> None:
    choices = getattr(cls, "_choices", {})
    if key in choices and value not in choices[key]:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices[key]], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices[key]))}{hint}")
    ranges = getattr(cls, "_ranges", {})
    if key in ranges and isinstance(value, (int, float)):
        low, high = ranges[key]
        if not low <= value <= high:
            raise RecipeError(f"{where}: {value} is outside [{low}, {high}]")


def recipe_to_dict(recipe: Recipe) -> dict:
    """Plain data (tuples as lists) for YAML/JSON and checkpoints."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(dataclasses.asdict(recipe))


def recipe_from_dict(data: dict, where: str = "recipe") -> Recipe:
    return _build(Recipe, data, where)


def with_overrides(recipe: Recipe, overrides: dict[str, object], where: str = "--set") -> Recipe:
    """``recipe`` with dotted keys replaced (``{"train.lr": 0.02}``), checked like a file: an unknown key
    gets its did-you-mean, a value out of range is refused."""
    data = recipe_to_dict(recipe)
    for dotted, value in overrides.items():
        parents, node = dotted.split("."), data
        for part in parents[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"{where} {dotted}: {part!r} is a value, not a section; fix: "
                                  f"`{'.'.join(parents[:parents.index(part) + 1])}=VALUE`")
            node = child
        node[parents[-1]] = value
    return _build(Recipe, data, f"{where} {', '.join(overrides)}")
