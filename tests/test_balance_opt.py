"""Class rebalancing core (no database): KL direction, targets, the subset optimiser against brute force,
the relaxation bound's validity, baselines, sampling weights, repeat factors, and the stratified split."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from curate.balance_compare import (capped_subset, kl_curve, random_subset, repeat_factors,
                                    sampling_weights, weighted_kl)
from curate.balance_opt import (BalanceError, kl, relaxation_bound, select_subset, selection_from_mask,
                                target_distribution)
from curate.balance_split import split_table, stratified_split

BRUTE_SEEDS = range(40)  # generator below: 40 seeds give 32 instances (images and instances budgets)


def _small_case(seed: int):
    """3-4 classes, 6-12 images (a few with no box, a few ineligible), a uniform or tempered target."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(6, 13)), int(rng.integers(3, 5))
    counts = rng.poisson(rng.uniform(0.2, 2.5, size=k) * np.array([1, 0.5, 0.3, 0.2][:k]), size=(n, k))
    eligible = rng.random(n) > 0.15
    totals = counts[eligible].sum(axis=0)
    candidates = int(((counts.sum(axis=1) > 0) & eligible).sum())
    if (totals == 0).any() or candidates < 4:
        return None
    target = (target_distribution(totals, "uniform") if seed % 2 == 0
              else target_distribution(totals, "tempered", temperature=0.5))
    unit = ("images", "instances")[(seed // 2) % 2]
    budget = (int(rng.integers(2, candidates)) if unit == "images"
              else int(totals.sum() * rng.uniform(0.3, 0.7)))
    return counts, eligible, target, unit, budget


def _brute_force(counts, eligible, target, unit, budget) -> float:
    """The exact optimum: every subset of the candidates within the budget."""
    size = counts.sum(axis=1)
    candidates = [i for i in range(len(counts)) if eligible[i] and size[i] > 0]
    if unit == "images":
        subsets = itertools.combinations(candidates, budget)
    else:
        low = max(budget - size[candidates].max() + 1, 1)
        subsets = (s for r in range(1, len(candidates) + 1)
                   for s in itertools.combinations(candidates, r) if low <= size[list(s)].sum() <= budget)
    return min(kl(target, counts[list(s)].sum(axis=0)) for s in subsets)


def _cases():
    return [case for case in map(_small_case, BRUTE_SEEDS) if case is not None]


def _zipf_counts(n_images: int, n_classes: int, seed: int, exponent: float = 1.1) -> np.ndarray:
    """Long-tail multi-label counts: 1-4 Zipf-drawn classes and 1-10 boxes per image."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, n_classes + 1) ** exponent
    slots = rng.choice(n_classes, size=(n_images, 4), p=freq / freq.sum())
    per_image, boxes = rng.integers(1, 5, n_images), rng.integers(1, 11, n_images)
    image = np.repeat(np.arange(n_images), boxes)
    slot = (rng.random(image.size) * per_image[image]).astype(int)
    counts = np.zeros((n_images, n_classes), np.int64)
    np.add.at(counts, (image, slots[image, slot]), 1)
    return counts


# ---------------------------------------------------------------- KL direction and targets


def test_kl_direction_punishes_a_vanished_class():
    q = np.array([0.5, 0.3, 0.2])
    dropped = np.array([50, 50, 0])  # the rare class is gone
    assert kl(q, dropped) == math.inf
    p = dropped / dropped.sum()  # the other direction would call this a fine selection
    assert np.isfinite(np.sum(p[p > 0] * np.log(p[p > 0] / q[p > 0])))
    assert kl(q, [5, 3, 2]) == pytest.approx(0.0, abs=1e-15)  # counts are normalised


def test_selection_never_drops_a_class_it_can_keep():
    counts = np.array([[9, 0, 0], [8, 1, 0], [7, 0, 0], [0, 0, 1], [10, 0, 0], [6, 0, 0]])
    target = target_distribution(counts.sum(axis=0), "uniform")
    chosen = select_subset(counts, target, 3)
    assert np.all(chosen.class_counts > 0) and np.isfinite(chosen.kl)
    assert chosen.mask[1] and chosen.mask[3]


def test_target_kinds_and_zero_count_classes():
    totals = np.array([100, 25, 0, 1])
    assert target_distribution(totals, "uniform").tolist() == [1 / 3, 1 / 3, 0.0, 1 / 3]
    half = target_distribution(totals, "tempered", temperature=0.5)
    assert half == pytest.approx(np.array([10, 5, 0, 1]) / 16)
    assert target_distribution(totals, "tempered", temperature=0.0)[2] == 0.0  # 0 ** 0 is not 1 here
    assert target_distribution(totals, "tempered", temperature=1.0) == pytest.approx(totals / 126)
    assert target_distribution(totals, "weights", weights=[2, 1, 0, 1]) == pytest.approx([.5, .25, 0, .25])
    with pytest.raises(BalanceError, match=r"classes without instances \(indices \[2\]\)"):
        target_distribution(totals, "weights", weights=[1, 1, 1, 1])
    with pytest.raises(BalanceError, match="outside"):
        target_distribution(totals, "tempered", temperature=1.5)
    with pytest.raises(BalanceError, match="unknown target kind"):
        target_distribution(totals, "zipf")


# ---------------------------------------------------------------- optimiser vs brute force


def test_select_subset_reaches_the_brute_force_optimum():
    cases = _cases()
    assert len(cases) >= 30
    for counts, eligible, target, unit, budget in cases:
        chosen = select_subset(counts, target, budget, budget_unit=unit, eligible=eligible, seed=1)
        assert chosen.kl == pytest.approx(_brute_force(counts, eligible, target, unit, budget),
                                          abs=1e-12), (unit, budget)


def test_relaxation_bound_never_exceeds_the_optimum():
    checked = 0
    for seed in range(40, 100):
        case = _small_case(seed)
        if case is None:
            continue
        counts, eligible, target, unit, budget = case
        optimum = _brute_force(counts, eligible, target, unit, budget)
        bound = relaxation_bound(counts, target, budget, budget_unit=unit, eligible=eligible)
        assert bound.bound <= optimum + 1e-12
        assert bound.bound <= bound.relaxed_kl + 1e-12
        loose = relaxation_bound(counts, target, budget, budget_unit=unit, eligible=eligible, max_iter=2)
        assert loose.bound <= optimum + 1e-12  # valid at any stage, only less tight
        checked += 1
    assert checked >= 40


def test_bound_is_tight_and_ours_beats_random_and_capping_on_zipf_data():
    counts = _zipf_counts(4000, 20, seed=3)
    target = target_distribution(counts.sum(axis=0), "uniform")
    for budget in (400, 1000, 2000):
        ours = select_subset(counts, target, budget)
        assert ours.images == budget
        assert ours.bound <= ours.kl <= ours.bound + max(1e-5, 0.01 * ours.kl)
        assert ours.kl < 0.25 * random_subset(counts, target, budget).kl
        assert ours.kl < capped_subset(counts, target, budget).kl


def test_instance_budget_stays_within_one_image_of_it():
    counts = _zipf_counts(1500, 12, seed=4)
    target = target_distribution(counts.sum(axis=0), "tempered", temperature=0.3)
    budget = 2000
    for chosen in (select_subset(counts, target, budget, budget_unit="instances"),
                   random_subset(counts, target, budget, budget_unit="instances"),
                   capped_subset(counts, target, budget, budget_unit="instances")):
        assert budget - counts.sum(axis=1).max() < chosen.instances <= budget


def test_eligible_mask_is_respected_and_seed_is_deterministic():
    counts = _zipf_counts(600, 8, seed=5)
    eligible = np.random.default_rng(0).random(600) > 0.3
    target = target_distribution(counts[eligible].sum(axis=0), "uniform")
    runs = [select_subset(counts, target, 150, eligible=eligible, seed=7) for _ in range(2)]
    assert np.array_equal(runs[0].mask, runs[1].mask)
    for chosen in (runs[0], random_subset(counts, target, 150, eligible=eligible),
                   capped_subset(counts, target, 150, eligible=eligible)):
        assert not chosen.mask[~eligible].any() and chosen.images == 150
    with pytest.raises(BalanceError, match=r"no eligible image holds \(indices \[1\]\)"):
        select_subset(np.array([[1, 0], [0, 1], [1, 1]]), [0.5, 0.5], 1, eligible=[True, False, False])


def test_budget_errors_name_the_problem():
    counts = np.array([[1, 0], [0, 2], [3, 1]])
    target = np.array([0.5, 0.5])
    with pytest.raises(BalanceError, match="only 3 eligible images"):
        select_subset(counts, target, 4)
    with pytest.raises(BalanceError, match="positive whole number"):
        select_subset(counts, target, 1.5)
    with pytest.raises(BalanceError, match="budget_unit"):
        select_subset(counts, target, 2, budget_unit="boxes")


# ---------------------------------------------------------------- baselines and the curve


def test_capping_by_hand_on_single_label_images():
    counts = np.zeros((17, 3), np.int64)
    counts[:10, 0], counts[10:15, 1], counts[15:, 2] = 1, 1, 1  # 10, 5 and 2 single-box images
    target = target_distribution(counts.sum(axis=0), "uniform")
    assert capped_subset(counts, target, 6).class_counts.tolist() == [2, 2, 2]
    # cap 4 gives 2 + 4 + 4 images: the first 9 added, rarest class first
    assert capped_subset(counts, target, 9).class_counts.tolist() == [3, 4, 2]


def test_kl_curve_has_one_point_per_fraction():
    counts = _zipf_counts(800, 10, seed=6)
    target = target_distribution(counts.sum(axis=0), "uniform")
    curve = kl_curve(counts, target, [0.1, 0.5, 1.0])
    assert curve.budgets == [80, 400, 800]
    assert all(b <= o + 1e-12 for b, o in zip(curve.bound, curve.ours))
    assert all(o <= min(r, c) for o, r, c in zip(curve.ours, curve.random, curve.capped))
    assert curve.ours[-1] == pytest.approx(kl(target, counts.sum(axis=0)))  # everything kept


# ---------------------------------------------------------------- weights


def test_sampling_weights_beat_uniform_and_repeat_factors_on_skewed_data():
    counts = _zipf_counts(3000, 15, seed=8, exponent=1.5)
    target = target_distribution(counts.sum(axis=0), "uniform")
    weights = sampling_weights(counts, target)
    assert weights.min() >= 0 and weights.mean() == pytest.approx(1.0)
    ours = weighted_kl(counts, target, weights)
    assert ours < 0.5 * weighted_kl(counts, target, repeat_factors(counts, threshold=0.1))
    assert weighted_kl(counts, target, repeat_factors(counts)) <= weighted_kl(counts, target,
                                                                              np.ones(3000))
    assert ours < 0.01 * weighted_kl(counts, target, np.ones(3000))


def test_sampling_weights_reach_a_perfect_weighting_when_one_exists():
    counts = np.array([[6, 1, 0], [1, 1, 0], [0, 2, 1], [3, 0, 1], [0, 0, 1], [5, 5, 5], [0, 0, 0]])
    hidden = np.array([0.1, 2.0, 1.5, 0.2, 3.0, 0.3, 0.0])  # any positive mix works
    target = counts.T @ hidden / (counts.T @ hidden).sum()
    eligible = np.ones(7, bool)
    eligible[5] = False
    weights = sampling_weights(counts, target, eligible=eligible)
    assert weighted_kl(counts, target, weights) < 1e-9
    assert weights[5] == 0 and weights[6] == 1.0  # ineligible: 0; no boxes: neutral


def test_repeat_factors_by_hand():
    counts = np.zeros((10, 2), np.int64)
    counts[:, 1] = 1
    counts[0, 0] = 3  # class 0 in 1 image of 10: f = 0.1
    factors = repeat_factors(counts, threshold=0.4)
    assert factors[0] == pytest.approx(2.0) and np.all(factors[1:] == 1.0)  # sqrt(0.4 / 0.1)


def test_selection_from_mask_reports_sizes():
    counts = np.array([[1, 2], [3, 0], [0, 4]])
    record = selection_from_mask(counts, [True, False, True], [0.5, 0.5])
    assert (record.images, record.instances, record.class_counts.tolist()) == (2, 7, [1, 6])


# ---------------------------------------------------------------- split


def test_split_is_stratified_per_class():
    counts = _zipf_counts(3000, 12, seed=9)
    splits = stratified_split(counts, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    table = split_table(counts, splits)
    totals = counts.sum(axis=0)
    for name, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        got = np.array(table[name]["class_counts"]) / totals
        assert np.all(np.abs(got - share) < 0.02), (name, got)
        assert abs(table[name]["images"] / 3000 - share) < 0.02
    assert sum(t["instances"] for t in table.values()) == counts.sum()


def test_split_keeps_groups_together_respects_fixed_and_is_deterministic():
    counts = _zipf_counts(1200, 8, seed=10)
    rng = np.random.default_rng(1)
    groups = [int(g) if g < 300 else None for g in rng.integers(0, 900, 1200)]
    fixed = [None] * 1200
    for i in range(0, 1200, 97):
        fixed[i] = "test"
    fixed[groups.index(next(g for g in groups if g is not None))] = "test"
    first = stratified_split(counts, groups=groups, fixed=fixed, seed=3)
    assert np.array_equal(first, stratified_split(counts, groups=groups, fixed=fixed, seed=3))
    for g in set(groups) - {None}:
        assert len({first[i] for i in range(1200) if groups[i] == g}) == 1
    assert all(first[i] == "test" for i in range(1200) if fixed[i] == "test")
    table = split_table(counts, first, names=["train", "val", "test"])
    assert abs(table["train"]["images"] / 1200 - 0.8) < 0.03


def test_split_rejects_conflicting_fixed_splits_and_unknown_names():
    counts = np.ones((4, 2), np.int64)
    with pytest.raises(BalanceError, match="group must stay in one split"):
        stratified_split(counts, groups=[0, 0, 1, 1], fixed=["train", "val", None, None])
    with pytest.raises(BalanceError, match="'trainval'"):
        stratified_split(counts, fixed=["trainval", None, None, None])
    with pytest.raises(BalanceError, match="sum to 1"):
        stratified_split(counts, {"train": 0.8, "val": 0.1})
