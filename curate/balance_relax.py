"""The convex relaxation behind balance_opt's subset selection, and its certified lower bound.

The problem (balance_opt has the why): choose x in {0,1}^n over the candidates (eligible images that
hold instances), s = C^T x, S = sum_c s_c, minimising KL(q || s/S) with exactly B images, or with S in
a window [lo, hi] of instances.

Relaxing x to [0,1]^n, the kept distributions P = {s(x)/S(x)} form a polytope (the image of one under
a linear-fractional map). For any prices w >= 0 (w_c > 0 where q_c > 0), Jensen's inequality gives,
for every p in P,

    KL(q || p) >= sum_c q_c log w_c - log(w . p) >= sum_c q_c log w_c - log R(w),  R(w) = max_{p in P} w . p

and R(w) is a linear-fractional program solved exactly: for B images, Dinkelbach's method (the ratio r
with max_x (v - r m) . x = 0, v = C w, each step a top-B selection) and, as its last step can stop a
hair early, r plus that slack over the fewest instances B images can hold; for the instance window,
the images by decreasing v_i / m_i until lo instances, the last one fractional (a smaller total can
only raise the average, so the maximum sits at lo). So EVERY w certifies a lower bound on the integer
optimum; maximising over w is the Lagrange dual of the relaxation and reaches its optimum (strong
duality). This handles the image budget's non-convex log S term without a grid over S: the problem is
convex in p (equivalently, the Charnes-Cooper change of variables y = x / S makes it convex in y).

The relaxation is solved by simplicial decomposition (fully corrective Frank-Wolfe): each step asks
the oracle for the vertex maximising w . p at w = q / p (the gradient, which also yields the bound
above) and re-optimises the mixture weights over the vertices kept so far by projected Newton. It stops
when the KL of the mixture (a feasible fractional solution) and the certified bound agree to
RELAX_REL_TOL. scipy.optimize's L-BFGS-B did the mixture step first: it took 13 of 18 s on 20k images
(170 iterations per call); Newton takes 5-20.
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
# Relaxation stopping rule: certified bound within 1e-4 relative (100x finer than the 1% integrality
# gap we report) or 1e-7 nats absolute (for targets the data can meet almost exactly).
RELAX_REL_TOL = 1e-4
RELAX_ABS_TOL = 1e-7
RELAX_MAX_ITER = 400  # simplicial-decomposition steps; 100k images x 100 classes took 13-93
DINKELBACH_MAX_ITER = 100  # converges superlinearly, in < 10 steps on every case measured
PRICE_FLOOR = 1e-12  # a class absent from the current mix gets price q_c / 1e-12: the oracle fetches it
MIX_MAX_ITER = 100  # projected-Newton steps for the mixture weights; 5-20 typically
MIX_ACTIVE = 1e-14  # a weight below this with a positive gradient stays at its bound
MIX_GRAD_TOL = 1e-12  # stationarity of the free weights
MIX_RIDGE = 1e-12  # relative ridge: vertices can be affinely dependent
TARGET_SUM_TOLERANCE = 1e-6  # a target read from a file may be rounded; it is renormalised
INTEGRAL = 1e-9  # x within this of 0 or 1 counts as whole
DENSE_COPY = 2_000_000  # entries (16 MB): below this the candidates are also kept as a dense array


class BalanceError(CurateError, ValueError):
    """An input the balancer cannot work with (names the argument and the fix)."""


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
class Problem:
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
    small: np.ndarray | None  # dense copy of csr when it is small (see dense())

    @property
    def cost(self) -> np.ndarray:
        """What one candidate uses of the budget."""
        return np.ones_like(self.m) if self.unit == "images" else self.m

    def kept(self, x) -> np.ndarray:
        return self.csr.T @ x

    def dense(self, index) -> np.ndarray:
        """Rows of a few candidates as a dense [len(index), classes] array."""
        if self.small is not None:  # sparse row indexing costs ~0.3 ms a call: small problems
            return self.small[index]  # keep a dense copy instead
        return self.csr[index].toarray()


def build_problem(counts, target, budget, budget_unit, eligible, seed) -> Problem:
    """Validate the inputs and put the candidates in a seeded order (the seed breaks ties)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or not np.issubdtype(counts.dtype, np.number) or \
            not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise BalanceError("counts must be a 2-D array of non-negative instance counts")
    q = np.asarray(target, dtype=float)
    if q.shape != (counts.shape[1],) or np.any(q < 0) or not abs(q.sum() - 1) < TARGET_SUM_TOLERANCE:
        raise BalanceError(f"target must be a distribution over the {counts.shape[1]} classes")
    q = q / q.sum()
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
    return Problem(len(counts), rows, csr, m, q, position[image[wanted]], cls[wanted],
                   values[wanted], q[cls[wanted]], budget_unit, lo, hi, float(smallest),
                   csr.toarray() if rows.size * q.size <= DENSE_COPY else None)


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


def _oracle(prob: Problem, w: np.ndarray, start: float):
    """argmax over the relaxed polytope of w . p: (vertex x as (indices, values), its p, an upper
    bound on the maximum). ``start``: w . p of a feasible p, a lower bound on the maximum."""
    v = prob.csr @ w
    if prob.unit == "instances":  # max average v/m over weight lo: fill by ratio, last one fractional
        order = _best_ratios(v / prob.m, prob.m, prob.lo)
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


def _best_ratios(ratio: np.ndarray, weight: np.ndarray, need: float) -> np.ndarray:
    """Indices by decreasing ratio, at least until their weights sum to ``need`` (partial sort)."""
    count = min(ratio.size, int(1.25 * need / weight.mean()) + 1)
    while count < ratio.size:
        top = np.argpartition(-ratio, count - 1)[:count]
        if weight[top].sum() >= need:
            return top[np.argsort(-ratio[top], kind="stable")]
        count = min(ratio.size, 2 * count)
    return np.argsort(-ratio, kind="stable")


def _vertex_p(prob: Problem, vertex) -> np.ndarray:
    x = np.zeros(prob.m.size)
    x[vertex[0]] = vertex[1]
    kept = prob.kept(x)
    return kept / kept.sum()


def _mix(points: np.ndarray, q: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Weights on the simplex minimising -sum q log(points @ lam), by projected Newton (Bertsekas 1982).

    With the linear term sum(lam) added, the minimiser over lam >= 0 has sum(lam) = 1 (scale argument),
    so only the bounds lam >= 0 remain; the Hessian is points' Gram matrix weighted by q / s^2.
    """
    wanted = (q > 0) & points.any(axis=1)  # a class no vertex holds yet: the next oracle call will
    a, qw = points[wanted], q[wanted]  # fetch it (its price is huge); no mix can help it now
    if not wanted.any():
        return start / start.sum()

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


def solve_relaxation(prob: Problem, *, rel_tol: float, abs_tol: float, max_iter: int):
    """Simplicial decomposition. Returns (fractional x over candidates, its KL, certified bound, steps)."""
    q, wanted = prob.q, prob.q > 0
    p = np.asarray(prob.csr.sum(axis=0)).ravel()
    p /= p.sum()
    xs, points, lam = [], np.zeros((q.size, 0)), np.zeros(0)
    lower, upper, step = 0.0, math.inf, 0  # KL >= 0: the trivial bound to start from
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


def purify(prob: Problem, x: np.ndarray) -> np.ndarray:
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
