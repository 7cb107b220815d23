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

Bound. Relaxing x to [0,1]^n, the kept distributions P = {s(x)/S(x)} form a polytope (a linear-fractional
image of one). For any prices w >= 0, Jensen's inequality gives, for every p in P,
KL(q || p) >= sum_c q_c log w_c - log(w . p) >= sum_c q_c log w_c - log R(w),  R(w) = max_{p in P} w . p,
and R(w) is a linear-fractional program solved exactly (Dinkelbach's method for the image budget, a
ratio-sorted fill for the instance window). So every w certifies a lower bound on the integer optimum;
maximising over w is the Lagrange dual of the relaxation and reaches its optimum (strong duality). This
also disposes of the non-convex log S term of the image budget without a grid over S: KL(q || s/S) is
quasi-convex in s and the problem is convex in p. We solve the relaxation by simplicial decomposition
(fully corrective Frank-Wolfe): vertices from the same oracle, mixture weights by L-BFGS-B (scipy), and
stop when a feasible fractional solution and the certified bound agree to RELAX_REL_TOL.

Integer solution. The relaxed optimum is a mix of a few integer vertices; images kept by all of them
are kept, the rest of the budget is filled greedily (best exact KL decrease) from the images some vertex
keeps, then a local search applies the best add / drop / swap move (exact KL change, swaps among the
SHORTLIST best drop and add candidates) until none improves. The seed only breaks ties (images are
visited in a seeded order), so a seed gives one selection.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.optimize import linprog

from curate.errors import CurateError

log = logging.getLogger(__name__)

BUDGET_UNITS = ("images", "instances")
TARGET_KINDS = ("uniform", "tempered", "weights")
# Relaxation stopping rule: certified bound within 1e-4 relative (100x finer than the 1% integrality
# gap we report) or 1e-7 nats absolute (for targets the data can meet almost exactly).
RELAX_REL_TOL = 1e-4
RELAX_ABS_TOL = 1e-7
RELAX_MAX_ITER = 400  # simplicial-decomposition steps; 100k x 100 classes converges in far fewer
DINKELBACH_MAX_ITER = 100  # converges superlinearly, in < 10 steps on every case measured
PRICE_FLOOR = 1e-12  # a class absent from the current mix gets price q_c / 1e-12: the oracle fetches it
MIX_MAX_ITER = 100  # projected-Newton steps for the mixture weights; 5-20 typically
MIX_ACTIVE = 1e-14  # a weight below this with a positive gradient stays at its bound
MIX_GRAD_TOL = 1e-12  # stationarity of the free weights
MIX_RIDGE = 1e-12  # relative ridge: vertices can be affinely dependent
INTEGRAL = 1e-9  # x* within this of 1 is "kept by every vertex"
SHORTLIST = 64  # move candidates per side: 64 x 64 swaps evaluated exactly per move
PAIR_SHORTLIST = 10  # two-image moves among the first 10 per side: 45 x 45 pairs, when no single move helps
MAX_MOVES = 5000  # local-search moves; each strictly improves, so this only bounds the time
IMPROVEMENT = 1e-12  # nats; smaller changes are floating-point noise
# Local search stops once certified (by the relaxation bound) within 0.01% or 1e-5 nats of the
# optimum. 1e-5 nats is the KL of class counts each 0.5% off their target: less than one image moves
# a class of a few hundred instances.
STOP_REL_GAP = 1e-4
STOP_ABS_GAP = 1e-5
KICKS = 10  # perturbations of the local optimum (iterated local search), while not certified
KICK_SIZE = 3  # images dropped per perturbation: one more than the largest move of the search
DENSE_ROWS = 1000  # fill steps score up to this many candidates on dense rows, more on the sparse ones


class BalanceError(CurateError, ValueError):
    """An input the balancer cannot work with (names the argument and the fix)."""


@dataclass
class Selection:
    mask: np.ndarray  # bool [n_images]: kept
    kl: float  # KL(target || kept instance distribution), nats
    images: int
    instances: int
    class_counts: np.ndarray  # int [n_classes]: kept instances per class
    bound: float = -math.inf  # certified lower bound on the optimum (ours only)


@dataclass
class RelaxationBound:
    bound: float  # certified lower bound on the optimal KL of any integer selection (nats)
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


def kl(q, p) -> float:
    """KL(q || p) in nats; both are normalised here (counts are fine). Infinite when a class with
    q_c > 0 has p_c = 0: the direction that forbids dropping a class (see the module docstring)."""
    q = np.asarray(q, dtype=float)
    p = np.asarray(p, dtype=float)
    if p.sum() <= 0:
        return math.inf
    q, p = q / q.sum(), p / p.sum()
    support = q > 0
    if np.any(p[support] <= 0):
        return math.inf
    return float(np.sum(q[support] * np.log(q[support] / p[support])))


@dataclass
class _Problem:
    """The candidates (eligible images with instances) in a seeded order, as sparse rows."""

    n_images: int
    rows: np.ndarray  # candidate -> image index
    csr: sparse.csr_array  # [candidates, classes], float
    m: np.ndarray  # instances per candidate
    q: np.ndarray
    nz_row: np.ndarray  # nonzeros of classes with q_c > 0: candidate, class, count, q_class
    nz_col: np.ndarray
    nz_val: np.ndarray
    nz_q: np.ndarray
    unit: str
    lo: float  # window on a.x, a = 1 (images) or m (instances)
    hi: float
    smallest: float  # fewest instances any feasible selection holds

    @property
    def cost(self) -> np.ndarray:
        """What one candidate uses of the budget."""
        return np.ones_like(self.m) if self.unit == "images" else self.m

    def kept(self, x) -> np.ndarray:
        return self.csr.T @ x


def _problem(counts, target, budget, budget_unit, eligible, seed) -> _Problem:
    counts = np.asarray(counts)
    if counts.ndim != 2 or not np.issubdtype(counts.dtype, np.number) or np.any(counts < 0):
        raise BalanceError("counts must be a 2-D array of non-negative instance counts")
    q = np.asarray(target, dtype=float)
    if q.shape != (counts.shape[1],) or np.any(q < 0) or not abs(q.sum() - 1) < 1e-6:
        raise BalanceError(f"target must be a distribution over the {counts.shape[1]} classes")
    if budget_unit not in BUDGET_UNITS:
        raise BalanceError(f"budget_unit {budget_unit!r}: expected one of {', '.join(BUDGET_UNITS)}")
    allowed = np.ones(len(counts), bool) if eligible is None else np.asarray(eligible, bool)
    if allowed.shape != (len(counts),):
        raise BalanceError(f"eligible must be {len(counts)} booleans, one per image")
    per_image = counts.sum(axis=1)
    rows = np.flatnonzero(allowed & (per_image > 0))
    rows = rows[np.random.default_rng(seed).permutation(rows.size)]  # the seed breaks ties
    position = np.full(len(counts), -1)
    position[rows] = np.arange(rows.size)
    image, cls = np.nonzero(counts)
    inside = position[image] >= 0
    image, cls = image[inside], cls[inside]
    values = counts[image, cls].astype(float)
    csr = sparse.csr_array((values, (position[image], cls)), shape=(rows.size, counts.shape[1]))
    lacking = np.flatnonzero((q > 0) & (np.bincount(cls, minlength=q.size) == 0))
    if lacking.size:
        raise BalanceError(f"the target puts mass on classes no eligible image holds (indices "
                           f"{lacking.tolist()}); fix: build the target from the eligible counts")
    wanted = q[cls] > 0
    m = per_image[rows].astype(float)
    lo, hi = _window(budget, budget_unit, m)
    smallest = lo if budget_unit == "instances" else np.partition(m, int(lo) - 1)[:int(lo)].sum()
    return _Problem(len(counts), rows, csr, m, q, position[image[wanted]], cls[wanted],
                    values[wanted], q[cls[wanted]], budget_unit, lo, hi, float(smallest))


def _window(budget, unit, m) -> tuple[float, float]:
    if isinstance(budget, bool) or not float(budget).is_integer() or budget < 1:
        raise BalanceError(f"budget {budget!r} must be a positive whole number of {unit}")
    if unit == "images":
        if budget > m.size:
            raise BalanceError(f"budget {budget} images, but only {m.size} eligible images hold boxes")
        return float(budget), float(budget)
    if budget >= m.sum():
        return float(m.sum()), float(m.sum())
    if budget < m.min():
        raise BalanceError(f"budget {budget} instances: no eligible image has that few boxes")
    return float(max(budget - m.max() + 1, 1)), float(budget)


# ---------------------------------------------------------------- relaxation


def _oracle(prob: _Problem, w: np.ndarray, start: float):
    """argmax over the relaxed polytope of w . p: (vertex x as (indices, values), its p, an upper
    bound on the maximum). ``start``: w . p of a feasible p, a lower bound on the maximum."""
    v = prob.csr @ w
    if prob.unit == "instances":  # max average v/m over weight lo: fill by ratio, last one fractional
        order = np.argsort(-v / prob.m, kind="stable")
        filled = np.cumsum(prob.m[order])
        k = min(int(np.searchsorted(filled, prob.lo)), order.size - 1)
        values = np.ones(k + 1)
        values[k] = (prob.lo - (filled[k - 1] if k else 0.0)) / prob.m[order[k]]
        vertex = (order[:k + 1], values)
        return vertex, _vertex_p(prob, vertex), float(v[order[:k + 1]] @ values) / prob.lo * (1 + 1e-12)
    budget = int(prob.lo)  # Dinkelbach: the ratio r with max_x (v - r m) . x = 0 is the maximum
    best_set, ratio = None, start
    for _ in range(DINKELBACH_MAX_ITER):
        top = np.argpartition(-(v - ratio * prob.m), budget - 1)[:budget]
        new = v[top].sum() / prob.m[top].sum()
        if best_set is None or new > ratio:
            best_set = top
        if new <= ratio:
            break
        ratio = new
    else:  # out of steps: the slack below must be measured at the maximiser for this ratio
        top = np.argpartition(-(v - ratio * prob.m), budget - 1)[:budget]
    slack = max(float((v - ratio * prob.m)[top].sum()), 0.0)  # v.x - ratio m.x <= slack for all x
    vertex = (best_set, np.ones(budget))
    return vertex, _vertex_p(prob, vertex), (ratio + slack / prob.smallest) * (1 + 1e-12)


def _vertex_p(prob: _Problem, vertex) -> np.ndarray:
    index, values = vertex
    kept = prob.csr[index].T @ values
    return kept / kept.sum()


def _mix(points: np.ndarray, q: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising -sum q log(points @ lam), by projected Newton (Bertsekas 1982).

    With the linear term sum(lam) added, the minimiser over lam >= 0 has sum(lam) = 1 (scale argument),
    so only the bounds lam >= 0 remain; the Hessian is points' Gram matrix weighted by q / s^2.
    """
    wanted = (q > 0) & points.any(axis=1)  # a class no vertex holds yet: the next oracle call will
    a, qw = points[wanted], q[wanted]  # fetch it (its price is huge); no mix can help it now

    def value(lam):
        s = a @ lam
        return math.inf if np.any(s <= 0) else float(lam.sum() - qw @ np.log(s))

    lam, current = start.copy(), value(start)
    for _ in range(MIX_MAX_ITER):
        s = a @ lam
        grad = 1.0 - a.T @ (qw / s)
        free = (lam > MIX_ACTIVE) | (grad < 0)
        if np.max(np.abs(np.where(free, grad, 0.0))) <= MIX_GRAD_TOL:
            break
        scaled = a[:, free] * np.sqrt(qw)[:, None] / s[:, None]
        hessian = scaled.T @ scaled
        hessian[np.diag_indices_from(hessian)] += MIX_RIDGE * (1.0 + np.trace(hessian))
        step = np.zeros_like(lam)
        step[free] = -linalg.solve(hessian, grad[free], assume_a="pos")
        for _ in range(60):  # Armijo along the projected arc
            trial = np.maximum(lam + step, 0.0)
            trial_value = value(trial)
            if trial_value <= current + 1e-4 * grad @ (trial - lam):
                break
            step *= 0.5
        else:
            break
        if current - trial_value <= 1e-16 * max(1.0, abs(current)):
            lam, current = trial, min(current, trial_value)
            break
        lam, current = trial, trial_value
    return lam / lam.sum()


def _solve_relaxation(prob: _Problem, *, rel_tol: float, abs_tol: float, max_iter: int):
    """Simplicial decomposition. Returns (fractional x over candidates, its KL, certified bound, steps)."""
    q, wanted = prob.q, prob.q > 0
    p = np.asarray(prob.csr.sum(axis=0)).ravel()
    p /= p.sum()
    xs, points, lam = [], np.zeros((q.size, 0)), np.zeros(0)
    lower, upper, step = -math.inf, math.inf, 0
    for step in range(1, max_iter + 1):
        w = np.where(wanted, q / np.maximum(p, PRICE_FLOOR), 0.0)
        x, point, best = _oracle(prob, w, float(w @ p))
        lower = max(lower, float(q[wanted] @ np.log(w[wanted])) - math.log(best))
        xs.append(x)
        points = np.column_stack([points, point])
        lam = _mix(points, q, np.append(lam * (1 - 1 / (lam.size + 1)), 1 / (lam.size + 1)))
        p = points @ lam
        upper = min(upper, kl(q, p))
        alive = lam > 0
        xs, points, lam = [x for x, a in zip(xs, alive) if a], points[:, alive], lam[alive]
        if math.isfinite(upper) and upper - lower <= abs_tol + rel_tol * upper:
            break
    # A p-mix with weights lam_j is the x-mix with weights proportional to lam_j / (instances of x_j).
    mu = lam / np.array([prob.m[index] @ values for index, values in xs])
    mu /= mu.sum()
    x_mix = np.bincount(np.concatenate([index for index, _ in xs]),
                        weights=np.concatenate([mj * values for mj, (_, values) in zip(mu, xs)]),
                        minlength=prob.m.size)
    return x_mix, upper, lower, step


def relaxation_bound(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                     rel_tol: float = RELAX_REL_TOL, abs_tol: float = RELAX_ABS_TOL,
                     max_iter: int = RELAX_MAX_ITER) -> RelaxationBound:
    """Certified lower bound on the optimal KL(q || p) of any selection within the budget."""
    prob = _problem(counts, target, budget, budget_unit, eligible, seed=0)
    x, upper, lower, steps = _solve_relaxation(prob, rel_tol=rel_tol, abs_tol=abs_tol,
                                               max_iter=max_iter)
    full = np.zeros(prob.n_images)
    full[prob.rows] = x
    return RelaxationBound(bound=lower, relaxed_kl=upper, iterations=steps, x=full)


# ---------------------------------------------------------------- integer selection
#
# Moves are scored by the exact change of sum_c q_c log(s_c) - log S, with counts floored at
# PRICE_FLOOR: while a wanted class is missing (only on the way to the first complete selection) this
# ranks moves by the classes they bring in; once every wanted class is present, a move that empties one
# is forbidden (its KL would be infinite).


def _log_ratio(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    old = np.maximum(old, PRICE_FLOOR)
    return np.log1p((np.maximum(new, PRICE_FLOOR) - old) / old)


def _move_deltas(prob: _Problem, keep: np.ndarray, s: np.ndarray) -> np.ndarray:
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


def _best_group_move(prob: _Problem, keep, s, drop, add, pair_count: int):
    """(delta, images out, images in) of the best feasible move taking a group (empty, one image or,
    with ``pair_count``, a pair of the first few) of ``drop`` out and a group of ``add`` in."""
    if pair_count:
        drop, add = drop[:pair_count], add[:pair_count]
    out_groups, in_groups = _groups(drop, pair_count), _groups(add, pair_count)
    out_rows, in_rows = prob.csr[drop].toarray(), prob.csr[add].toarray()
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


def _local_search(prob: _Problem, keep: np.ndarray, bound: float) -> np.ndarray:
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
            s = s - prob.csr[out].sum(axis=0) + prob.csr[into].sum(axis=0)
            drop, add = drop[~np.isin(drop, out)], add[~np.isin(add, into)]
            moves, improved = moves + 1, True
        if not improved and pair_count:
            break
        pair_count = 0 if improved else PAIR_SHORTLIST
    return keep


def _purify(prob: _Problem, x: np.ndarray) -> np.ndarray:
    """A vertex of {y in [0,1]^n: y keeps the same instances per wanted class, images and total as x}:
    at most (wanted classes + 2) fractional entries, so rounding it moves few images. A linear program
    (scipy's HiGHS dual simplex) over x's fractional entries, its objective pulling each towards the
    nearer of 0 and 1. The relaxed optimum itself is often spread thin (measured: 51,265 fractional
    entries at a 10% budget of 100k images), which no greedy completion can round quickly."""
    frac = np.flatnonzero((x > INTEGRAL) & (x < 1 - INTEGRAL))
    sub = prob.csr[frac]
    rows = [sub[:, prob.q > 0].T, sparse.csr_array(prob.m[frac][None, :])]
    if prob.unit == "images":
        rows.append(sparse.csr_array(np.ones((1, frac.size))))
    if frac.size <= sum(r.shape[0] for r in rows):
        return x
    a_eq = sparse.vstack(rows).tocsr()
    result = linprog(1.0 - 2.0 * x[frac], A_eq=a_eq, b_eq=a_eq @ x[frac], bounds=(0.0, 1.0),
                     method="highs-ds")
    if result.status != 0:  # numerically infeasible: keep x, the fill and local search still work
        log.info("purifying the relaxed selection failed (%s); rounding it as is", result.message)
        return x
    purified = x.copy()
    purified[frac] = np.clip(result.x, 0.0, 1.0)
    return purified


def _add_deltas(prob: _Problem, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
    """KL change of adding each of a few candidates (dense rows; exact when finite)."""
    wanted = prob.q > 0
    dense = prob.csr[rows].toarray()[:, wanted]
    change = _log_ratio(s[wanted] + dense, s[wanted]) @ prob.q[wanted]
    return _log_ratio(s.sum() + prob.m[rows], s.sum()) - change


def _fill(prob: _Problem, keep: np.ndarray, pool: np.ndarray) -> np.ndarray:
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
        s = s + prob.csr[[j]].toarray().ravel()
        used += cost[j]
    return keep


def _certified(value: float, bound: float) -> bool:
    return math.isfinite(value) and value - bound <= STOP_ABS_GAP + STOP_REL_GAP * value


def _kicks(prob: _Problem, keep: np.ndarray, bound: float, seed: int) -> np.ndarray:
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


def select_subset(counts, target, budget, *, budget_unit: str = "images", eligible=None,
                  seed: int = 0) -> Selection:
    """Images to keep so that the kept instance distribution is closest to ``target`` in KL(q || p).

    ``budget``: exactly that many images, or (``budget_unit="instances"``) at most that many instances
    and more than the budget minus the largest image. Ineligible images and images without instances
    are never kept. The returned ``bound`` certifies how far from optimal the selection can be.
    """
    prob = _problem(counts, target, budget, budget_unit, eligible, seed)
    x, _, lower, _ = _solve_relaxation(prob, rel_tol=RELAX_REL_TOL, abs_tol=RELAX_ABS_TOL,
                                       max_iter=RELAX_MAX_ITER)
    x = _purify(prob, x)
    keep = _fill(prob, x >= 1 - INTEGRAL, x > INTEGRAL)
    keep = _kicks(prob, _local_search(prob, keep, lower), lower, seed)
    return _selection(prob.n_images, counts, prob.rows[keep], prob.q, bound=lower)


def _selection(n_images, counts, kept_rows, q, *, bound=-math.inf) -> Selection:
    mask = np.zeros(n_images, bool)
    mask[kept_rows] = True
    class_counts = np.asarray(counts)[mask].sum(axis=0).astype(np.int64)
    return Selection(mask=mask, kl=kl(q, class_counts), images=int(mask.sum()),
                     instances=int(class_counts.sum()), class_counts=class_counts, bound=bound)
