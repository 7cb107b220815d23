"""Refining a fitted anchor spec on the grid: the fitness, coordinate search, Ultralytics-style evolution.

Reads: nothing. Writes: nothing. Called by :func:`curate.anchor_fit.fit_anchor_spec`.

The fitness of an AnchorSpec is grid-aware coverage + ``FITNESS_IOU_WEIGHT`` x mean best IoU over a sample of
(box, position) pairs, exact and fast: the best default box of each shape is the one at the nearest grid centre
(:func:`curate.anchor_grid.grid_best_iou`), so a spec costs ``M x T`` IoUs (T shapes), not ``M x N`` (N priors).

* :func:`coordinate_refine`: passes over the layers; for each, scales on a grid around the current one and,
  for each scale, the layer's ratios chosen greedily from ``RATIO_GRID``; kept when the fitness improves. One
  scale per layer (AnchorSpec's form) makes this search the step that matters most.
* :func:`evolve`: Ultralytics autoanchor's evolution (mutation probability 0.9, sigma 0.1, kept when better),
  in log space, over every scale and ratio: a final polish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from curate.anchor_grid import anchor_shapes_px, grid_best_iou
from trainer.priors import AnchorSpec

MIN_SCALE = 1e-3  # relative to the input height
MAX_REFINED_SCALE = 1.5  # the search may go past the input (DefaultBoxes clips w, h to it)
MAX_RATIO = 10.0  # w / h (and h / w) limit during evolution
REFINE_PASSES = 3  # coordinate passes over the layers
SCALE_FACTORS = tuple(2.0 ** np.linspace(-1, 1, 13))  # candidate scales per layer and pass: x 0.5 .. x 2
RATIO_GRID = tuple(float(r) for r in np.exp(np.linspace(math.log(1 / 5), math.log(5), 21)))  # w / h candidates
MIN_GAIN = 1e-4  # fitness gain that a change must bring (stops churn on ties)
EVOLVE_GENERATIONS = 200
REFINE_SAMPLE_SIZE = 4_000  # (box, position) pairs scored; fewer boxes are repeated at new positions
MUTATION_PROBABILITY, MUTATION_SIGMA = 0.9, 0.1  # Ultralytics autoanchor's mp and s (in log space here)
FITNESS_IOU_WEIGHT = 0.1  # coverage is a step function; mean best IoU breaks ties and guides the search
SPEC_DIGITS = 4  # decimals of the scales and ratios written (the spec measured is the rounded one)


@dataclass(frozen=True)
class SampleFitness:
    """Grid-aware coverage and mean best IoU on the refinement sample (exact, via grid_best_iou)."""

    coverage: float
    mean_best_iou: float
    sample_size: int

    @property
    def value(self) -> float:
        return self.coverage + FITNESS_IOU_WEIGHT * self.mean_best_iou


def rounded_spec(scales: Sequence[float], ratios: Sequence[Sequence[float]],
                 extra_square: bool = True) -> AnchorSpec:
    """The spec as written to a recipe: ``SPEC_DIGITS`` decimals."""
    return AnchorSpec(scales=tuple(round(float(s), SPEC_DIGITS) for s in scales),
                      aspect_ratios=tuple(tuple(round(float(r), SPEC_DIGITS) for r in rs) for rs in ratios),
                      extra_square=extra_square)


def refinement_sample(wh: np.ndarray, centres_xy: np.ndarray | None, input_size_hw: tuple[int, int],
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(w, h) and centres of the scored boxes: a seeded sample, or every box repeated (each time at a new
    random position) up to about ``REFINE_SAMPLE_SIZE`` when there are fewer; given centres are not repeated."""
    if len(wh) > REFINE_SAMPLE_SIZE:
        index = np.sort(rng.choice(len(wh), REFINE_SAMPLE_SIZE, replace=False))
    elif centres_xy is not None:
        index = np.arange(len(wh))
    else:
        index = np.tile(np.arange(len(wh)), math.ceil(REFINE_SAMPLE_SIZE / len(wh)))
    sample = wh[index]
    if centres_xy is not None:
        return sample, centres_xy[index]
    height, width = input_size_hw
    low = np.minimum(sample / 2, [width / 2, height / 2])
    high = np.maximum(np.array([width, height]) - sample / 2, low)
    return sample, low + rng.random(sample.shape) * (high - low)


class Scorer:
    """Fitness on the refinement sample: exact best IoU per default-box shape on the grid (float32)."""

    def __init__(self, wh: np.ndarray, offsets: np.ndarray, input_size_hw: tuple[int, int], threshold: float):
        self.wh, self.offsets = wh.astype(np.float32), offsets.astype(np.float32)
        self.input_size_hw, self.threshold = input_size_hw, threshold
        self.num_layers = offsets.shape[1]

    def shape_px(self, scale: float, ratio: float = 1.0) -> tuple[float, float]:
        height, width = self.input_size_hw  # as DefaultBoxes: relative to the height, clipped to the input
        return min(scale * math.sqrt(ratio) * height, width), min(scale / math.sqrt(ratio) * height, height)

    def layer_iou(self, layer: int, shapes: Sequence[tuple[float, float]]) -> np.ndarray:
        per_layer = [list(shapes) if k == layer else [] for k in range(self.num_layers)]
        return grid_best_iou(self.wh, self.offsets, per_layer)

    def spec_iou(self, spec: AnchorSpec) -> np.ndarray:
        return grid_best_iou(self.wh, self.offsets, anchor_shapes_px(spec, input_size_hw=self.input_size_hw))

    def values(self, best: np.ndarray) -> np.ndarray:
        """Fitness of each column of ``best`` ([M] or [M, C]: each box's best IoU)."""
        return (best >= self.threshold).mean(axis=0) + FITNESS_IOU_WEIGHT * best.mean(axis=0)

    def fitness(self, spec: AnchorSpec) -> SampleFitness:
        best = self.spec_iou(spec).max(axis=1)
        return SampleFitness(coverage=float((best >= self.threshold).mean()),
                             mean_best_iou=float(best.mean()), sample_size=len(self.wh))


def coordinate_refine(spec: AnchorSpec, scorer: Scorer) -> AnchorSpec:
    """Passes over the layers (in order: finest first for every backbone here), then the last scale: each
    layer's scale is tried on ``SCALE_FACTORS`` around its value and, for each, its ratios are chosen
    greedily from ``RATIO_GRID`` and the current ones, as many as it has; the best combination is kept when
    it beats the current fitness by ``MIN_GAIN``. The extra squares next to the layer move with its scale."""
    scales, ratios = list(spec.scales), [list(r) for r in spec.aspect_ratios]
    current = float(scorer.values(scorer.spec_iou(spec).max(axis=1)))
    for _ in range(REFINE_PASSES):
        improved = False
        for layer in range(spec.num_layers):
            value, scale, chosen = _best_layer(scales, ratios, layer, scorer, spec.extra_square)
            if value > current + MIN_GAIN:
                scales[layer], ratios[layer], current, improved = scale, chosen, value, True
        if spec.extra_square:
            value, scale = _best_last_scale(scales, ratios, scorer)
            if value > current + MIN_GAIN:
                scales[-1], current, improved = scale, value, True
        if not improved:
            break
    return rounded_spec(scales, ratios, spec.extra_square)


def _others_best(scales: list[float], ratios: list[list[float]], scorer: Scorer, skip) -> np.ndarray:
    """Best IoU of each sample box over every default-box type for which ``skip(layer, is_extra)`` is false."""
    best = np.zeros(len(scorer.wh), dtype=np.float32)
    for layer, layer_ratios in enumerate(ratios):
        shapes = [scorer.shape_px(scales[layer], r) for r in layer_ratios] if not skip(layer, False) else []
        if not skip(layer, True):
            shapes.append(scorer.shape_px(math.sqrt(scales[layer] * scales[layer + 1])))
        if shapes:
            best = np.maximum(best, scorer.layer_iou(layer, shapes).max(axis=1))
    return best


def _best_layer(scales: list[float], ratios: list[list[float]], layer: int, scorer: Scorer,
                extra_square: bool) -> tuple[float, float, list[float]]:
    base = _others_best(scales, ratios, scorer, lambda k, extra: k == layer or (extra and (
        not extra_square or k == layer - 1)))
    best = (-math.inf, scales[layer], ratios[layer])
    candidates_r = sorted(set(RATIO_GRID) | set(ratios[layer]))
    for factor in SCALE_FACTORS:
        scale = float(np.clip(scales[layer] * factor, MIN_SCALE, MAX_REFINED_SCALE))
        floor = base
        if extra_square:  # this layer's extra square and the one below it follow the scale
            extra = scorer.shape_px(math.sqrt(scale * scales[layer + 1]))
            floor = np.maximum(floor, scorer.layer_iou(layer, [extra])[:, 0])
            if layer > 0:
                extra_below = scorer.shape_px(math.sqrt(scales[layer - 1] * scale))
                floor = np.maximum(floor, scorer.layer_iou(layer - 1, [extra_below])[:, 0])
        options = scorer.layer_iou(layer, [scorer.shape_px(scale, r) for r in candidates_r])
        chosen = []
        for _ in range(len(ratios[layer])):  # greedy: the ratio that adds most, one at a time
            gains = scorer.values(np.maximum(floor[:, None], options))
            gains[chosen] = -math.inf
            pick = int(np.argmax(gains))
            chosen.append(pick)
            floor = np.maximum(floor, options[:, pick])
        value = float(scorer.values(floor))
        if value > best[0]:
            best = (value, scale, sorted(candidates_r[i] for i in chosen))
    return best


def _best_last_scale(scales: list[float], ratios: list[list[float]], scorer: Scorer) -> tuple[float, float]:
    """The last scale only sizes the last layer's extra square."""
    last = len(ratios) - 1
    base = _others_best(scales, ratios, scorer, lambda k, extra: extra and k == last)
    candidates = [float(np.clip(scales[-1] * f, MIN_SCALE, MAX_REFINED_SCALE)) for f in SCALE_FACTORS]
    options = scorer.layer_iou(last, [scorer.shape_px(math.sqrt(scales[last] * c)) for c in candidates])
    values = scorer.values(np.maximum(base[:, None], options))
    return float(values.max()), candidates[int(np.argmax(values))]


def evolve(spec: AnchorSpec, scorer: Scorer, generations: int, rng: np.random.Generator) -> AnchorSpec:
    """Ultralytics-style evolution in log space: each parameter mutates with probability
    ``MUTATION_PROBABILITY`` by ``u * N(0, 1) * MUTATION_SIGMA`` (u uniform per generation); kept if better."""
    lengths = [len(r) for r in spec.aspect_ratios]
    num_scales = len(spec.scales)
    theta = np.log(np.array([*spec.scales, *(r for rs in spec.aspect_ratios for r in rs)]))
    num_ratios = len(theta) - num_scales
    low = np.r_[np.full(num_scales, math.log(MIN_SCALE)), np.full(num_ratios, -math.log(MAX_RATIO))]
    high = np.r_[np.full(num_scales, math.log(MAX_REFINED_SCALE)), np.full(num_ratios, math.log(MAX_RATIO))]

    def decode(values: np.ndarray) -> AnchorSpec:
        ratios = np.split(np.exp(values[num_scales:]), np.cumsum(lengths)[:-1])
        return rounded_spec(np.exp(values[:num_scales]), ratios, spec.extra_square)

    best_spec, best = spec, scorer.fitness(spec).value
    for _ in range(generations):
        mutated = rng.random(theta.shape) < MUTATION_PROBABILITY
        step = mutated * rng.random() * rng.standard_normal(theta.shape)
        if not step.any():
            continue
        candidate = np.clip(theta + step * MUTATION_SIGMA, low, high)
        candidate_spec = decode(candidate)
        value = scorer.fitness(candidate_spec).value
        if value > best:
            theta, best_spec, best = candidate, candidate_spec, value
    return best_spec
