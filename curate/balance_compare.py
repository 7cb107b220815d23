"""What `curate balance` compares its selection with, and rebalancing by weights (no data dropped).

Baselines at the same budget as balance_opt.select_subset, on the same candidates (eligible images
that hold instances):
- ``random_subset``: a seeded uniform sample (for an instance budget: images in a seeded order, each
  kept while it fits).
- ``capped_subset``: the "take the smallest class's count" balancing of common SSD code, made to work
  on multi-label images. Classes are visited rarest first (fewest eligible instances); class c keeps
  adding images that contain it, in a seeded order, until it holds cap_c instances (or images, for an
  image budget), counting what images kept for rarer classes already brought. cap_c = m q_c / max q,
  so for a uniform target every class gets the same cap m. An image brings all its boxes, so frequent
  classes overshoot their cap through images kept for rare ones: capping cannot avoid that, ours can
  weigh it. m is found by bisection: the smallest cap whose run reaches the budget; the selection is
  the run's first images in the order they were added (exactly B for an image budget; for an
  instance budget each image while it fits, then the other candidates in the seeded order while they
  fit, so the total ends within one image of B like every selection here).

Weights: ``sampling_weights`` finds per-image weights w >= 0 whose expected instance distribution
p ∝ C^T w minimises KL(q || p). With a_i = w_i m_i / sum_j w_j m_j (m_i the image's boxes) and r_i its
class distribution, p = sum_i a_i r_i: choosing a on the simplex is a mixture-proportion problem,
convex, and solved by its classical multiplicative (EM) update a_i <- a_i sum_c q_c r_ic / p_c
(monotone; Cover 1984), started from the uniform weighting. Every step also certifies its distance to
the optimum: by the Jensen argument of balance_relax, KL(q || p) - min <= log max_i sum_c q_c r_ic / p_c,
and it stops when that is below WEIGHT_GAP. The update multiplies each image by a function of its
class mix, so images with equal counts keep equal weights and no image is set to zero in finitely
many steps: the weights stay spread, unlike a vertex solution on at most (classes) images. (scipy's
L-BFGS-B on w >= 0 took 23 s on 100k images, at 0.4 s per iteration inside scipy; EM reaches 1e-14
nats in 50 steps, 0.2 s.) ``repeat_factors`` is LVIS's repeat-factor sampling (Gupta et al. 2019),
the usual alternative, for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from curate.balance_opt import (BUDGET_UNITS, BalanceError, Selection, kl, select_subset,
                                selection_from_mask)

CAP_BISECTIONS = 40  # halvings of the cap interval: from the largest class total to 1e-12 of it
LVIS_THRESHOLD = 0.001  # t of LVIS repeat-factor sampling: classes in fewer than 0.1% of images repeat
WEIGHT_MAX_ITER = 2000  # multiplicative (EM) steps; 100k x 100 synthetic: 1e-14 nats in 50
WEIGHT_GAP = 1e-9  # nats: stop once the certified distance to the optimal KL is below this


@dataclass
class KLCurve:
    fractions: list[float]
    budgets: list[int]
    budget_unit: str
    ours: list[float] = field(default_factory=list)
    bound: list[float] = field(default_factory=list)
    random: list[float] = field(default_factory=list)
    capped: list[float] = field(default_factory=list)


def _candidates(counts, eligible) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(counts)
    if counts.ndim != 2 or np.any(counts < 0):
        raise BalanceError("counts must be a 2-D array of non-negative instance counts")
    allowed = np.ones(len(counts), bool) if eligible is None else np.asarray(eligible, bool)
    if allowed.shape != (len(counts),):
        raise BalanceError(f"eligible must be {len(counts)} booleans, one per image")
    return counts, np.flatnonzero(allowed & (counts.sum(axis=1) > 0))


def _take_in_order(order: np.ndarray, size: np.ndarray, budget: int, unit: str) -> np.ndarray:
    """The first images of ``order`` within the budget: B images, or those that fit in B instances
    (each skipped image is larger than the room left, so the result ends within one image of B)."""
    if unit not in BUDGET_UNITS:
        raise BalanceError(f"budget_unit {unit!r}: expected one of {', '.join(BUDGET_UNITS)}")
    if unit == "images":
        if budget > order.size:
            raise BalanceError(f"budget {budget} images, but only {order.size} eligible images "
                               "hold boxes")
        return order[:budget]
    taken, room = [], float(budget)
    for index, m in zip(order.tolist(), size[order].tolist()):
        if m <= room:
            taken.append(index)
            room -= m
    return np.asarray(taken, dtype=np.int64)


def random_subset(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                  seed: int = 0) -> Selection:
    """A seeded uniform sample of the candidates within the budget."""
    counts, rows = _candidates(counts, eligible)
    order = rows[np.random.default_rng(seed).permutation(rows.size)]
    kept = _take_in_order(order, counts.sum(axis=1), int(budget), budget_unit)
    return _selection(counts, kept, target)


def _capped_run(columns: list[np.ndarray], gains: list[np.ndarray], counts, classes, caps,
                unit: str) -> list[int]:
    """Images added, in order, when each class (rarest first) is filled up to its cap."""
    kept = np.zeros(len(counts), bool)
    have = np.zeros(counts.shape[1])
    added: list[int] = []
    for c in classes:
        need = caps[c] - have[c]
        if need <= 0:
            continue
        fresh = ~kept[columns[c]]
        images, gain = columns[c][fresh], gains[c][fresh]
        take = images[:int(np.searchsorted(np.cumsum(gain), need)) + 1]
        kept[take] = True
        added.extend(take.tolist())
        brought = counts[take]
        have += brought.sum(axis=0) if unit == "instances" else (brought > 0).sum(axis=0)
    return added


def capped_subset(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                  seed: int = 0) -> Selection:
    """Per-class capping (rarest class first, cap proportional to the target), see the module
    docstring for exactly how multi-label images are handled."""
    counts, rows = _candidates(counts, eligible)
    q = np.asarray(target, dtype=float)
    rng = np.random.default_rng(seed)
    order = rows[rng.permutation(rows.size)]
    classes = [c for c in np.argsort(counts[rows].sum(axis=0), kind="stable") if q[c] > 0]
    columns, gains = [], []
    for c in range(counts.shape[1]):  # images holding c in the seeded order, and what each brings
        images = order[counts[order, c] > 0]
        columns.append(images)
        gains.append(counts[images, c].astype(float) if budget_unit == "instances"
                     else np.ones(images.size))
    size = counts.sum(axis=1).astype(float)

    def reaches(scale: float) -> tuple[bool, list[int]]:
        added = _capped_run(columns, gains, counts, classes, scale * q / q.max(), budget_unit)
        used = len(added) if budget_unit == "images" else size[added].sum()
        return used >= budget, added

    low, high = 0.0, float(counts[rows].sum(axis=0).max())
    enough, best = reaches(high)
    for _ in range(CAP_BISECTIONS):
        middle = (low + high) / 2
        ok, added = reaches(middle)
        if ok:
            high, best = middle, added
            if budget_unit == "images" and len(added) == budget:
                break
        else:
            low = middle
    if not enough or budget_unit == "instances":  # then the others, in the seeded order: they fill
        taken = set(best)  # what the run leaves (every wanted class in, or room no run image fits)
        best = best + [i for i in order.tolist() if i not in taken]
    kept = _take_in_order(np.asarray(best, dtype=np.int64), size, int(budget), budget_unit)
    return _selection(counts, kept, q)


def _selection(counts, kept_rows, target) -> Selection:
    mask = np.zeros(len(counts), bool)
    mask[kept_rows] = True
    return selection_from_mask(counts, mask, target)


def kl_curve(counts, target, fractions, *, budget_unit: str = "images", eligible=None,
             seed: int = 0) -> KLCurve:
    """KL(q || p) against the fraction kept (of the candidate images, or of their instances) for our
    selection, its certified bound, random sampling and capping: the data of the report's curve."""
    counts, rows = _candidates(counts, eligible)
    total = rows.size if budget_unit == "images" else int(counts[rows].sum())
    budgets = [max(1, int(round(f * total))) for f in fractions]
    curve = KLCurve(fractions=[float(f) for f in fractions], budgets=budgets, budget_unit=budget_unit)
    options = {"budget_unit": budget_unit, "eligible": eligible, "seed": seed}
    for budget in budgets:
        ours = select_subset(counts, target, budget, **options)
        curve.ours.append(ours.kl)
        curve.bound.append(ours.bound)
        curve.random.append(random_subset(counts, target, budget, **options).kl)
        curve.capped.append(capped_subset(counts, target, budget, **options).kl)
    return curve


def sampling_weights(counts, target, *, eligible=None) -> np.ndarray:
    """Per-image weights whose expected instance distribution minimises KL(target || p): mean 1 over
    the eligible images with boxes, 0 for ineligible images, 1 for eligible images without boxes (they
    do not move the class distribution). See the module docstring for the method."""
    counts, rows = _candidates(counts, eligible)
    q = np.asarray(target, dtype=float)
    lacking = np.flatnonzero((q > 0) & (counts[rows].sum(axis=0) == 0))
    if lacking.size:
        raise BalanceError(f"the target puts mass on classes no eligible image holds (indices "
                           f"{lacking.tolist()}); fix: build the target from the eligible counts")
    size = counts[rows].sum(axis=1).astype(float)
    shares = sparse.csr_array(counts[rows].astype(float) / size[:, None])  # r_i: image i's distribution
    by_class = shares.T.tocsr()
    mix = size / size.sum()  # alpha_i = w_i m_i / sum(w m): uniform weights to start
    for _ in range(WEIGHT_MAX_ITER):
        p = by_class @ mix
        gain = shares @ np.where(q > 0, q / np.maximum(p, 1e-300), 0.0)
        if math.log(gain.max()) <= WEIGHT_GAP:  # KL(q || p) - optimum <= log max_i gain_i
            break
        mix *= gain
        mix /= mix.sum()
    allowed = np.ones(len(counts), bool) if eligible is None else np.asarray(eligible, bool)
    weights = allowed.astype(float)
    per_image = mix / size
    weights[rows] = per_image / per_image.mean()
    return weights


def repeat_factors(counts, threshold: float = LVIS_THRESHOLD, *, eligible=None) -> np.ndarray:
    """LVIS repeat factors: r_c = max(1, sqrt(t / f_c)), f_c the fraction of (eligible) images
    holding class c; an image repeats max over its classes (1 without boxes; 0 if ineligible)."""
    if not 0 < threshold <= 1:
        raise BalanceError(f"threshold {threshold} must be in (0, 1]: a fraction of images")
    counts, _ = _candidates(counts, eligible)
    allowed = np.ones(len(counts), bool) if eligible is None else np.asarray(eligible, bool)
    present = counts[allowed] > 0
    frequency = present.mean(axis=0) if allowed.any() else np.zeros(counts.shape[1])
    with np.errstate(divide="ignore"):
        per_class = np.where(frequency > 0, np.sqrt(threshold / np.maximum(frequency, 1e-300)), 1.0)
    per_class = np.maximum(per_class, 1.0)
    factors = np.where(counts > 0, per_class[None, :], 1.0).max(axis=1)
    return np.where(allowed, factors, 0.0)


def weighted_kl(counts, target, weights) -> float:
    """KL(target || expected instance distribution) when images are drawn proportionally to weights."""
    return kl(target, np.asarray(counts, dtype=float).T @ np.asarray(weights, dtype=float))

