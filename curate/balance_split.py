"""Stratified train/val/test split for multi-label detection data, and per-split class tables.

Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011): each split j starts with a
demand of f_j times every class's total; repeatedly take the class held by the fewest unassigned units
and give each unassigned unit holding it (in a seeded order) to the split that still demands most of
that class (ties: most images still demanded, then a seeded draw), subtracting the unit's counts from
that split's demand. Rare classes are placed first, while every split still has room for them;
common ones even out at the end. Demand is in instances (boxes), not images: a detector trains and is
scored on boxes, and one image can hold ten boxes of a class.

A unit is one image or, with ``groups``, all images sharing a group id (e.g. duplicate groups from
curate/duplicates.py), with summed counts: members of a group always land in one split, so a near copy
of a test image cannot sit in train. ``fixed`` names an existing split per image (VOC ImageSets), or
None / "" for none; fixed images stay where they are (a group holding a fixed image goes with it, and
two different fixed splits in one group is an error) and count against their split's demand before
the rest is placed. Units with no boxes (negatives) are placed last, by images still demanded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import sparse

from curate.balance_relax import BalanceError

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
FRACTION_SUM_TOLERANCE = 1e-6  # fractions must sum to 1 within this


def _fractions(fractions: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(fractions)
    values = np.array([float(fractions[n]) for n in names])
    if not names or not all(isinstance(n, str) and n for n in names):
        raise BalanceError("fractions must map split names (non-empty strings) to fractions")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or \
            abs(values.sum() - 1) > FRACTION_SUM_TOLERANCE:
        raise BalanceError(f"split fractions {dict(fractions)} must be non-negative and sum to 1")
    return names, values


def _units(n_images: int, groups) -> tuple[np.ndarray, int]:
    """Unit index per image: one unit per group id, one per image without a group (None)."""
    if groups is None:
        return np.arange(n_images), n_images
    groups = list(groups)
    if len(groups) != n_images:
        raise BalanceError(f"groups must give one id (or None) per image: {len(groups)} for {n_images}")
    index: dict = {}
    unit = np.empty(n_images, np.int64)
    for i, g in enumerate(groups):
        key = ("image", i) if g is None else ("group", g)
        unit[i] = index.setdefault(key, len(index))
    return unit, len(index)


def _fixed_units(fixed, unit, n_units, names) -> np.ndarray:
    """Split index per unit, -1 where free."""
    where = np.full(n_units, -1)
    if fixed is None:
        return where
    fixed = list(fixed)
    if len(fixed) != len(unit):
        raise BalanceError(f"fixed must give one split name (or None) per image: {len(fixed)} for "
                           f"{len(unit)}")
    lookup = {name: j for j, name in enumerate(names)}
    for i, name in enumerate(fixed):
        if name is None or name == "":  # no existing split
            continue
        if name not in lookup:
            raise BalanceError(f"image {i} is fixed to split {name!r}, which is not among the "
                               f"fractions ({', '.join(names)}); fix: add it or map it to one of them")
        u, j = unit[i], lookup[name]
        if where[u] not in (-1, j):
            raise BalanceError(f"image {i}'s group holds images fixed to both {names[where[u]]!r} and "
                               f"{name!r}; a group must stay in one split: fix the existing splits")
        where[u] = j
    return where


def _pick(candidates: np.ndarray, demand: np.ndarray, room: np.ndarray, rng) -> int:
    """The candidate split demanding most of the class, then most images; ties drawn."""
    best = candidates[demand[candidates] == demand[candidates].max()]
    best = best[room[best] == room[best].max()]
    return int(best[0] if best.size == 1 else rng.choice(best))


def stratified_split(counts, fractions: Mapping[str, float] = DEFAULT_FRACTIONS, *, groups=None,
                     fixed=None, seed: int = 0) -> np.ndarray:
    """Split name per image (numpy str array). See the module docstring."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or np.any(counts < 0):
        raise BalanceError("counts must be a 2-D array of non-negative instance counts")
    names, shares = _fractions(fractions)
    rng = np.random.default_rng(seed)
    unit, n_units = _units(len(counts), groups)
    to_unit = sparse.csr_array((np.ones(len(counts)), (unit, np.arange(len(counts)))),
                               shape=(n_units, len(counts)))
    unit_counts = sparse.csr_array(to_unit @ sparse.csr_array(counts.astype(float)))
    unit_size = np.bincount(unit, minlength=n_units).astype(float)
    where = _fixed_units(fixed, unit, n_units, names)

    demand = shares[:, None] * np.asarray(unit_counts.sum(axis=0)).ravel()[None, :]
    room = shares * len(counts)
    for j in range(len(names)):
        placed = where == j
        demand[j] -= np.asarray(unit_counts[placed].sum(axis=0)).ravel() if placed.any() else 0.0
        room[j] -= unit_size[placed].sum()
    open_splits = np.flatnonzero(shares > 0)  # a 0-fraction split only keeps its fixed images

    by_class = unit_counts.tocsc()
    free = where < 0
    class_order = rng.permutation(counts.shape[1])  # seeded tie-break between equally rare classes
    holders = [by_class.indices[by_class.indptr[c]:by_class.indptr[c + 1]]
               for c in range(counts.shape[1])]
    while True:
        remaining = np.array([free[h].sum() for h in holders])
        if not remaining.any():
            break
        rarest = class_order[np.argmin(np.where(remaining[class_order] > 0,
                                                remaining[class_order], math.inf))]
        members = holders[rarest][free[holders[rarest]]]
        for u in members[rng.permutation(members.size)]:
            j = _pick(open_splits, demand[:, rarest], room, rng)
            where[u], free[u] = j, False
            row = slice(unit_counts.indptr[u], unit_counts.indptr[u + 1])
            demand[j, unit_counts.indices[row]] -= unit_counts.data[row]
            room[j] -= unit_size[u]
    for u in np.flatnonzero(free)[rng.permutation(int(free.sum()))]:  # units without boxes
        j = _pick(open_splits, room, room, rng)
        where[u] = j
        room[j] -= unit_size[u]
    return np.asarray(names)[where[unit]]


def split_table(counts, splits, names=None) -> dict[str, dict]:
    """Per split (in ``names`` order, default first appearance): images, instances, class_counts."""
    counts = np.asarray(counts)
    splits = np.asarray(splits)
    if names is None:
        names = list(dict.fromkeys(splits.tolist()))
    table = {}
    for name in names:
        rows = splits == name
        per_class = counts[rows].sum(axis=0).astype(np.int64)
        table[name] = {"images": int(rows.sum()), "instances": int(per_class.sum()),
                       "class_counts": per_class.tolist()}
    return table
