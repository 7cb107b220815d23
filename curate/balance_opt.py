"""Class rebalancing by subset selection: keep the images whose instance-level class distribution is
closest, in KL divergence, to a target, under a budget of images or instances.

Pure numpy + scipy, no database: curate/balance.py reads the counts from the dataset and writes the
selection back as a tag. Inputs: ``counts[i, c]`` (boxes of class c in image i), ``eligible`` (images the
caller allows; quarantined ones are excluded there) and a target distribution ``q`` over the classes.

Direction. We minimise KL(q || p), p the kept instance distribution. KL(q || p) = sum_c q_c log(q_c / p_c)
is infinite as soon as a class the target wants (q_c > 0) vanishes from the selection (p_c = 0), so no
class can be silently dropped. The other direction, KL(p || q) = sum_c p_c log(p_c / q_c), counts a
vanished class as 0 log 0 = 0: dropping every image of the rare classes costs nothing beyond the
renormalisation of the others, so the "most balanced" subset could be the common classes alone.

Problem. x in {0,1}^n (kept images), s = C^T x (kept instances per class), S = sum_c s_c:
KL = sum q log q - sum_c q_c log s_c + log S. Budget: ``images``: exactly B images; ``instances``:
S in [B - m_max + 1, B], m_max the most instances in one eligible image (a selection to which no further
image fits always lands there, so the window is never empty). Images without instances carry no class
and are never selected (negatives are chosen separately).

Method. balance_relax solves the convex relaxation (x in [0,1]^n) and certifies a lower bound on the
optimum. Its solution is a mix of integer selections; a linear program (purify) moves it to a vertex
with at most (classes + 2) fractional images while keeping every class count, those are rounded by
greedy completion (best exact KL change first), then a local search applies improving moves: any
single add, drop or swap among the SHORTLIST best drop and add candidates, then two-image groups,
then up to KICKS random perturbations (iterated local search). It stops as soon as the bound certifies
the selection within STOP_REL_GAP / STOP_ABS_GAP of optimal. The seed orders the candidates (ties)
and draws the perturbations, so a seed gives one selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curate.balance_relax import (BUDGET_UNITS, INTEGRAL, PRICE_FLOOR, RELAX_ABS_TOL, RELAX_MAX_ITER,
                                  RELAX_REL_TOL, BalanceError, Problem, build_problem, kl, purify,
                                  solve_relaxation)

__all__ = ["BUDGET_UNITS", "TARGET_KINDS", "BalanceError", "RelaxationBound", "Selection", "kl",
           "relaxation_bound", "select_subset", "selection_from_mask", "target_distribution"]

TARGET_KINDS = ("uniform", "tempered", "weights")
SHORTLIST = 64  # move candidates per side: 64 x 64 swaps scored exactly per move
PAIR_SHORTLIST = 10  # two-image groups among the first 10 per side (45 pairs), when no single move helps
MAX_MOVES = 5000  # local-search moves; each strictly improves, so this only bounds the time
IMPROVEMENT = 1e-12  # nats; smaller changes are floating-point noise
# The search stops once certified within 0.01% or 1e-5 nats of the optimum. 1e-5 nats is the KL of
# class counts each 0.45% off their target: one image moves a class of a few hundred instances more.
STOP_REL_GAP = 1e-4
STOP_ABS_GAP = 1e-5
KICKS = 10  # perturbations of the local optimum (iterated local search), while not certified
KICK_SIZE = 3  # images dropped per perturbation: one more than the largest move of the search
DENSE_ROWS = 1000  # fill steps score up to this many candidates on dense rows, more on the sparse ones


@dataclass
class Selection:
    mask: np.ndarray  # bool [n_images]: kept
    kl: float  # KL(target || kept instance distribution), nats
    images: int
    instances: int
    class_counts: np.ndarray  # int [n_classes]: kept instances per class
    bound: float = -math.inf  # certified lower bound on the optimal KL at this budget (ours only)


@dataclass
class RelaxationBound:
    bound: float  # certified lower bound on the optimal KL of any selection within the budget (nats)
    relaxed_kl: float  # KL of a feasible fractional solution: bound <= relaxation optimum <= this
    iterations: int
    x: np.ndarray  # float [n_images]: that fractional solution (0 outside the candidates)


def target_distribution(class_totals, kind: str = "uniform", *, temperature: float | None = None,
                        weights=None) -> np.ndarray:
    """Target q over the classes: uniform, tempered (q_c proportional to n_c^t) or normalised weights.

    A class with no instances gets q_c = 0 in every kind: no subset can contain it, and a positive q_c
    would make every KL(q || p) infinite. Given weights that put mass on such a class are an error.
    """
    totals = np.asarray(class_totals, dtype=float)
    if totals.ndim != 1 or not np.all(np.isfinite(totals)) or np.any(totals < 0):
        raise BalanceError("class_totals must be a 1-D array of non-negative counts")
    present = totals > 0
    if not present.any():
        raise BalanceError("no class has any instance: there is nothing to balance")
    if kind not in TARGET_KINDS:
        raise BalanceError(f"unknown target kind {kind!r}; expected one of {', '.join(TARGET_KINDS)}")
    if (temperature is not None) != (kind == "tempered"):
        raise BalanceError("temperature is required for, and only for, kind='tempered'")
    if (weights is not None) != (kind == "weights"):
        raise BalanceError("weights are required for, and only for, kind='weights'")
    if kind == "uniform":
        raw = present.astype(float)
    elif kind == "tempered":
        if not 0.0 <= temperature <= 1.0:
            raise BalanceError(f"temperature {temperature} is outside [0, 1] (0: uniform, 1: as is)")
        raw = np.zeros_like(totals)
        raw[present] = totals[present] ** temperature  # 0 ** 0 would be 1: absent classes stay 0
    else:
        raw = np.asarray(weights, dtype=float)
        if raw.shape != totals.shape or not np.all(np.isfinite(raw)) or np.any(raw < 0):
            raise BalanceError(f"weights must be {totals.size} finite non-negative numbers")
        absent = np.flatnonzero((raw > 0) & ~present)
        if absent.size:
            raise BalanceError(f"weights put mass on classes without instances (indices "
                               f"{absent.tolist()}); fix: give them weight 0 or remove them")
        if raw.sum() <= 0:
            raise BalanceError("weights are all zero on the classes present")
    return raw / raw.sum()


def selection_from_mask(counts, mask, target, *, bound: float = -math.inf) -> Selection:
    """The Selection record (KL, sizes, kept counts) of any kept-image mask."""
    mask = np.asarray(mask, bool)
    class_counts = np.asarray(counts)[mask].sum(axis=0).astype(np.int64)
    return Selection(mask=mask, kl=kl(target, class_counts), images=int(mask.sum()),
                     instances=int(class_counts.sum()), class_counts=class_counts, bound=bound)


def relaxation_bound(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                     rel_tol: float = RELAX_REL_TOL, abs_tol: float = RELAX_ABS_TOL,
                     max_iter: int = RELAX_MAX_ITER) -> RelaxationBound:
    """Certified lower bound on the optimal KL(q || p) of any selection within the budget (see
    balance_relax): valid whatever the tolerances, which only decide how tight it is."""
    prob = build_problem(counts, target, budget, budget_unit, eligible, seed=0)
    x, upper, lower, steps = solve_relaxation(prob, rel_tol=rel_tol, abs_tol=abs_tol,
                                              max_iter=max_iter)
    full = np.zeros(prob.n_images)
    full[prob.rows] = x
    return RelaxationBound(bound=lower, relaxed_kl=upper, iterations=steps, x=full)


def select_subset(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                  seed: int = 0) -> Selection:
    """Images to keep so that the kept instance distribution is closest to ``target`` in KL(q || p).

    ``budget``: exactly that many images, or (``budget_unit="instances"``) at most that many instances
    and more than the budget minus the largest image. Ineligible images and images without instances
    are never kept. The returned ``bound`` certifies how far from optimal the selection can be.
    """
    prob = build_problem(counts, target, budget, budget_unit, eligible, seed)
    x, _, lower, _ = solve_relaxation(prob, rel_tol=RELAX_REL_TOL, abs_tol=RELAX_ABS_TOL,
                                      max_iter=RELAX_MAX_ITER)
    x = purify(prob, x)
    keep = _fill(prob, x >= 1 - INTEGRAL, x > INTEGRAL)
    keep = _kicks(prob, _local_search(prob, keep, lower), lower, seed)
    mask = np.zeros(prob.n_images, bool)
    mask[prob.rows[keep]] = True
    return selection_from_mask(counts, mask, prob.q, bound=lower)


# ---------------------------------------------------------------- integer selection
#
# Moves are scored by the exact change of sum_c q_c log(s_c) - log S, with counts floored at
# PRICE_FLOOR: while a wanted class is missing (only on the way to the first complete selection) this
# ranks moves by the classes they bring in; once every wanted class is present, a move that empties one
# is forbidden (its KL would be infinite).


def _log_ratio(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    old = np.maximum(old, PRICE_FLOOR)
    return np.log1p((np.maximum(new, PRICE_FLOOR) - old) / old)


def _move_deltas(prob: Problem, keep: np.ndarray, s: np.ndarray) -> np.ndarray:
    """KL change of dropping each kept candidate / adding each other one (exact when finite)."""
    sign = np.where(keep, -1.0, 1.0)
    step = sign[prob.nz_row] * prob.nz_val
    old = s[prob.nz_col]
    if np.all(s[prob.q > 0] > 0):  # the usual case, one pass: log1p(change / count)
        with np.errstate(divide="ignore"):
            terms = prob.nz_q * np.log1p(step / old)  # -inf where a drop empties a class: delta +inf
    else:
        terms = prob.nz_q * _log_ratio(old + step, old)
    change = np.bincount(prob.nz_row, weights=terms, minlength=prob.m.size)
    total = s.sum()
    return _log_ratio(total + sign * prob.m, total) - change


def _groups(candidates: np.ndarray, pair_count: int) -> np.ndarray:
    """Membership [groups, candidates]: the empty group, each candidate, each pair of the first few."""
    k = candidates.size
    first, second = np.triu_indices(min(pair_count, k), 1)
    member = np.zeros((1 + k + first.size, k))
    member[np.arange(1, k + 1), np.arange(k)] = 1.0
    member[k + 1 + np.arange(first.size), first] = 1.0
    member[k + 1 + np.arange(first.size), second] = 1.0
    return member


def _smallest(index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The SHORTLIST entries of ``index`` with the smallest values, smallest first."""
    if index.size > SHORTLIST:
        part = np.argpartition(values, SHORTLIST - 1)[:SHORTLIST]
        index, values = index[part], values[part]
    return index[np.argsort(values, kind="stable")]


def _best_group_move(prob: Problem, keep, s, drop, add, pair_count: int):
    """(delta, images out, images in) of the best feasible move taking a group (empty, one image or,
    with ``pair_count``, a pair of the first few) of ``drop`` out and a group of ``add`` in."""
    if pair_count:
        drop, add = drop[:pair_count], add[:pair_count]
    out_groups, in_groups = _groups(drop, pair_count), _groups(add, pair_count)
    out_rows, in_rows = prob.dense(drop), prob.dense(add)
    touched = (prob.q > 0) & (out_rows.any(axis=0) | in_rows.any(axis=0))  # other classes: no change
    diff = ((in_groups @ in_rows)[None, :, :] - (out_groups @ out_rows)[:, None, :])
    total = s.sum()
    size = total + diff.sum(axis=2)
    diff = diff[..., touched]
    with np.errstate(divide="ignore"):
        if np.all(s[prob.q > 0] > 0):
            change = np.log1p(diff / s[touched]) @ prob.q[touched]  # -inf: a class emptied
        else:
            change = _log_ratio(s[touched] + diff, s[touched]) @ prob.q[touched]
    score = _log_ratio(size, total) - change
    cost = prob.cost
    used = float(cost @ keep) - (out_groups @ cost[drop])[:, None] + (in_groups @ cost[add])[None, :]
    score[(used < prob.lo) | (used > prob.hi)] = math.inf
    score[0, 0] = math.inf  # the empty move
    a, b = np.unravel_index(np.argmin(score), score.shape)
    return float(score[a, b]), drop[out_groups[a] > 0], add[in_groups[b] > 0]


def _local_search(prob: Problem, keep: np.ndarray, bound: float) -> np.ndarray:
    """Improving moves until none is left. Each round scores every candidate's single add / drop,
    shortlists the best SHORTLIST per side and applies the best group moves among them, re-scored
    exactly after each, while they improve; two-image groups only when single ones no longer help."""
    s = prob.kept(keep.astype(float))
    moves, pair_count = 0, 0
    while moves < MAX_MOVES:
        if _certified(kl(prob.q, s), bound):
            break
        delta = _move_deltas(prob, keep, s)
        kept, other = np.flatnonzero(keep), np.flatnonzero(~keep)
        drop, add = _smallest(kept, delta[kept]), _smallest(other, delta[other])
        improved = False
        while moves < MAX_MOVES and (drop.size or add.size):
            change, out, into = _best_group_move(prob, keep, s, drop, add, pair_count)
            if not change < -IMPROVEMENT:
                break
            keep[out], keep[into] = False, True
            s = s - prob.dense(out).sum(axis=0) + prob.dense(into).sum(axis=0)
            drop, add = drop[~np.isin(drop, out)], add[~np.isin(add, into)]
            moves, improved = moves + 1, True
        if not improved and pair_count:
            break
        pair_count = 0 if improved else PAIR_SHORTLIST
    return keep


def _add_deltas(prob: Problem, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
    """KL change of adding each of a few candidates (dense rows; exact when finite)."""
    wanted = prob.q > 0
    dense = prob.dense(rows)[:, wanted]
    change = _log_ratio(s[wanted] + dense, s[wanted]) @ prob.q[wanted]
    return _log_ratio(s.sum() + prob.m[rows], s.sum()) - change


def _fill(prob: Problem, keep: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Add candidates one at a time (best KL change first, from ``pool`` while any fits, then from
    all) until the budget is reached. Nothing fitting means the instance window is reached."""
    cost = prob.cost
    s, used = prob.kept(keep.astype(float)), float(cost @ keep)
    pool = pool & ~keep
    while used < prob.lo:
        fits = np.flatnonzero(pool & (used + cost <= prob.hi))
        if fits.size == 0:
            fits = np.flatnonzero(~keep & (used + cost <= prob.hi))
            if fits.size == 0:
                break
        if fits.size <= DENSE_ROWS:
            j = int(fits[np.argmin(_add_deltas(prob, fits, s))])
        else:
            j = int(fits[np.argmin(_move_deltas(prob, keep, s)[fits])])
        keep[j], pool[j] = True, False
        s = s + prob.dense(j)
        used += cost[j]
    return keep


def _certified(value: float, bound: float) -> bool:
    return math.isfinite(value) and value - bound <= STOP_ABS_GAP + STOP_REL_GAP * value


def _kicks(prob: Problem, keep: np.ndarray, bound: float, seed: int) -> np.ndarray:
    """Iterated local search: drop KICK_SIZE random kept images, refill from the others, search
    again; keep the result when it is better. Only while the bound does not certify the selection."""
    rng = np.random.default_rng(seed)
    best = kl(prob.q, prob.kept(keep.astype(float)))
    for _ in range(KICKS):
        if _certified(best, bound):
            break
        trial = keep.copy()
        out = rng.choice(np.flatnonzero(trial), size=min(KICK_SIZE, int(trial.sum())), replace=False)
        trial[out] = False
        pool = ~trial
        pool[out] = False
        trial = _local_search(prob, _fill(prob, trial, pool), bound)
        value = kl(prob.q, prob.kept(trial.astype(float)))
        if value < best - IMPROVEMENT:
            keep, best = trial, value
    return keep
