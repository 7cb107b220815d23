"""``curate balance``: stratified split, KL-divergence subset selection, sampling weights, negatives.

Reads: the usable samples (``clean.training_view``), their ``ground_truth`` boxes of kept classes,
split tags, duplicate groups. Writes: split tags (``train``/``val``/``test``); the tag ``balanced`` and
the saved view ``balanced`` for a selection; the field ``sample_weight`` (exported in the training
manifest for a weighted sampler); the tag ``negative_selected`` (+ a split tag) on chosen background
images; ``dataset.info["curate_balance"]`` with the numbers. Everything is a tag or a field: ``--undo``
removes them (splits only when this command assigned them). Quarantined samples are never selected.
The optimisation itself (curate/balance_opt.py, balance_compare.py, balance_split.py) is pure numpy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
from pymongo import UpdateOne

from curate import schema
from curate.clean import training_view

TAG_BALANCED = schema.TAG_BALANCED
NOT_MINED = {"tags": {"$ne": schema.TAG_HARD_NEGATIVE}}  # `curate negatives --mine` owns those (its --undo)
TAG_NEGATIVE_SELECTED = schema.TAG_NEGATIVE_SELECTED
SAMPLE_WEIGHT = schema.SAMPLE_WEIGHT
INFO_BALANCE = "curate_balance"
SPLITS = ("train", "val", "test")
EXCLUDED_BOX_TAG = schema.BOX_TAG_EXCLUDED_CLASS


@dataclass
class Table:
    """The usable samples as a counts matrix (rows: samples, columns: classes)."""

    ids: list
    classes: list[str]
    counts: np.ndarray
    splits: list[str | None]
    groups: list[str | None]
    tags: list[list[str]]


def load_table(dataset, classes: list[str] | None = None) -> Table:
    view = training_view(dataset)
    docs = list(view._aggregate([{"$project": {"tags": 1, f"{schema.GROUND_TRUTH}.detections.label": 1,
                                               f"{schema.GROUND_TRUTH}.detections.tags": 1,
                                               schema.EXACT_DUPLICATE_GROUP: 1,
                                               schema.NEAR_DUPLICATE_GROUP: 1}}]))
    labels = [[d["label"] for d in (doc.get(schema.GROUND_TRUTH) or {}).get("detections") or []
               if EXCLUDED_BOX_TAG not in (d.get("tags") or [])] for doc in docs]
    classes = classes or sorted({label for row in labels for label in row})
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(docs), len(classes)), dtype=np.int64)
    for row, sample_labels in enumerate(labels):
        for label in sample_labels:
            if label in index:
                counts[row, index[label]] += 1
    splits = [next((t for t in doc.get("tags", []) if t in SPLITS), None) for doc in docs]
    groups = [doc.get(schema.NEAR_DUPLICATE_GROUP) or doc.get(schema.EXACT_DUPLICATE_GROUP) for doc in docs]
    return Table([d["_id"] for d in docs], classes, counts, splits, groups, [d.get("tags", []) for d in docs])


@dataclass
class BalanceReport:
    dataset: str
    classes: list[str]
    split: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    negatives: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _bulk(dataset, ops) -> None:
    for start in range(0, len(ops), 1000):
        dataset._sample_collection.bulk_write(ops[start:start + 1000], ordered=False)


def assign_splits(dataset, table: Table, fractions: dict[str, float], *, resplit: bool, seed: int) -> dict:
    """Stratified split (duplicate groups kept together); existing split tags kept unless resplit."""
    from curate.balance_split import split_table, stratified_split

    group_ids = {g: i for i, g in enumerate(dict.fromkeys(g for g in table.groups if g))}
    groups = np.array([group_ids[g] if g else len(group_ids) + i for i, g in enumerate(table.groups)])
    fixed = None if resplit or not any(table.splits) else table.splits
    splits = stratified_split(table.counts, fractions, groups=groups, fixed=fixed, seed=seed)
    ops = []
    for sample_id, tags, split in zip(table.ids, table.tags, splits):
        new = [t for t in tags if t not in SPLITS] + [str(split)]
        if new != tags:
            ops.append(UpdateOne({"_id": sample_id}, {"$set": {"tags": new}}))
    _bulk(dataset, ops)
    return {"fractions": fractions, "seed": seed, "resplit": resplit, "changed": len(ops),
            "table": split_table(table.counts, splits, list(fractions)), "classes": table.classes}


def select_balanced(dataset, table: Table, *, budget: int, budget_unit: str, target: np.ndarray,
                    seed: int) -> dict:
    """Tag the KL-optimal subset ``balanced`` and save it as a view; compare with random and capping."""
    from curate.balance_compare import capped_subset, random_subset
    from curate.balance_opt import select_subset

    ours = select_subset(table.counts, target, budget, budget_unit=budget_unit, seed=seed)
    rand = random_subset(table.counts, target, budget, budget_unit=budget_unit, seed=seed)
    capped = capped_subset(table.counts, target, budget, budget_unit=budget_unit, seed=seed)
    dataset._sample_collection.update_many({}, {"$pull": {"tags": TAG_BALANCED}})
    chosen = [table.ids[i] for i in np.flatnonzero(ours.mask)]
    dataset._sample_collection.update_many({"_id": {"$in": chosen}}, {"$addToSet": {"tags": TAG_BALANCED}})
    dataset.save_view(TAG_BALANCED, dataset.match_tags(TAG_BALANCED), overwrite=True)
    return {"budget": budget, "budget_unit": budget_unit, "images": ours.images, "instances": ours.instances,
            "kl": ours.kl, "bound": ours.bound, "random_kl": rand.kl, "capped_kl": capped.kl,
            "kept_per_class": dict(zip(table.classes, ours.class_counts.tolist())),
            "before_per_class": dict(zip(table.classes, table.counts.sum(axis=0).tolist())),
            "target": dict(zip(table.classes, np.round(target, 6).tolist()))}


def write_weights(dataset, table: Table, target: np.ndarray) -> dict:
    """``sample_weight`` per usable sample so weighted sampling matches the target; vs repeat factors."""
    import fiftyone as fo

    from curate.balance_compare import repeat_factors, sampling_weights, weighted_kl

    weights = sampling_weights(table.counts, target)
    if SAMPLE_WEIGHT not in dataset.get_field_schema():
        dataset.add_sample_field(SAMPLE_WEIGHT, fo.FloatField)
    _bulk(dataset, [UpdateOne({"_id": i}, {"$set": {SAMPLE_WEIGHT: float(w)}})
                    for i, w in zip(table.ids, weights)])
    uniform = np.ones(len(table.ids))
    return {"kl_weighted": weighted_kl(table.counts, target, weights),
            "kl_repeat_factors": weighted_kl(table.counts, target, repeat_factors(table.counts)),
            "kl_uniform": weighted_kl(table.counts, target, uniform)}


def positive_rows(table: Table) -> np.ndarray:
    """The images training learns objects from: with a kept box, and in the balanced selection if any."""
    has_boxes = table.counts.sum(axis=1) > 0
    use_balanced = any(TAG_BALANCED in tags for tags in table.tags)
    return has_boxes & np.array([TAG_BALANCED in t or not use_balanced for t in table.tags], bool)


def negative_candidates(table: Table) -> list[int]:
    """Rows that may serve as background: no kept box, no box of an excluded class, not a copy of a
    positive image (same duplicate group). Quarantined samples are not in the table."""
    has_boxes = table.counts.sum(axis=1) > 0
    positive_groups = {g for g, p in zip(table.groups, positive_rows(table)) if p and g}
    return [i for i in range(len(table.ids)) if not has_boxes[i]
            and schema.TAG_HAS_EXCLUDED_CLASS not in table.tags[i]
            and not (table.groups[i] and table.groups[i] in positive_groups)]


def select_negatives(dataset, table: Table, *, ratio: float, fractions: dict[str, float], seed: int) -> dict:
    """Background-only images at ``positives:negatives = ratio``: annotated-empty, declared negatives or
    unlabeled images of the usable samples. Never an image holding a box of an excluded class (tag
    has_excluded_class), never a quarantined one (not in the table), never a copy of a positive image
    (shares its duplicate group). Chosen ones get ``negative_selected`` and a split tag if they had none."""
    positive = positive_rows(table)
    candidates = negative_candidates(table)
    wanted = int(round(positive.sum() / ratio)) if ratio > 0 else 0
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(candidates, size=min(wanted, len(candidates)), replace=False).tolist())
    names, shares = list(fractions), np.array(list(fractions.values()), float)
    ops = []
    for i in chosen:
        tags = [t for t in table.tags[i] if t != TAG_NEGATIVE_SELECTED] + [TAG_NEGATIVE_SELECTED]
        if not any(t in SPLITS for t in tags):
            tags.append(str(rng.choice(names, p=shares / shares.sum())))
        ops.append(UpdateOne({"_id": table.ids[i]}, {"$set": {"tags": tags}}))
    dataset._sample_collection.update_many(NOT_MINED, {"$pull": {"tags": TAG_NEGATIVE_SELECTED}})
    _bulk(dataset, ops)
    return {"ratio": ratio, "positives": int(positive.sum()), "wanted": wanted, "candidates": len(candidates),
            "selected": len(chosen), "short_by": max(0, wanted - len(chosen))}


def save_report(dataset, report: BalanceReport) -> None:
    dataset.info[INFO_BALANCE] = {"ran_at": dt.datetime.now().isoformat(timespec="seconds"),
                                  **report.to_dict()}
    dataset.save()


def undo_balance(dataset) -> None:
    """Remove the selection, the weights and the chosen negatives (split tags stay: they are data; mined
    hard negatives stay too: `curate negatives --undo` removes those)."""
    collection = dataset._sample_collection
    collection.update_many({}, {"$pull": {"tags": TAG_BALANCED}, "$unset": {SAMPLE_WEIGHT: ""}})
    collection.update_many(NOT_MINED, {"$pull": {"tags": TAG_NEGATIVE_SELECTED}})
    if dataset.has_saved_view(TAG_BALANCED):
        dataset.delete_saved_view(TAG_BALANCED)
    dataset.info.pop(INFO_BALANCE, None)
    dataset.save()
