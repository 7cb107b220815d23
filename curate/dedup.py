"""Hashes every importable image and groups exact and near duplicates, within and across sources.

Reads: ``filepath``, ``metadata``, ``source``. Writes: ``content_hash``, ``perceptual_hash``,
``exact_duplicate_group``, ``near_duplicate_group`` (curate/schema.py). Nothing is deleted: a group id is
the id of the group's first sample, so a view can show each group together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pymongo import UpdateOne

from curate import schema
from curate.duplicates import find_groups
from curate.hashing import HASH_PREFIX, hash_files
from curate.progress import track

WRITE_BATCH = 1000


@dataclass
class DuplicateStats:
    hashed_now: int = 0
    exact_groups: int = 0
    samples_in_exact_groups: int = 0
    near_groups: int = 0
    samples_in_near_groups: int = 0
    cross_source_exact_groups: int = 0
    cross_source_near_groups: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def declare_fields(dataset) -> None:
    import fiftyone as fo

    existing = dataset.get_field_schema()
    for name in (schema.EXACT_DUPLICATE_GROUP, schema.NEAR_DUPLICATE_GROUP):
        if name not in existing:
            dataset.add_sample_field(name, fo.StringField)


def hash_unhashed(dataset, *, progress: bool | None = None) -> int:
    """Hash readable images that have no hash yet (new or changed since the last import)."""
    collection = dataset._sample_collection
    stale = {"$or": [{schema.CONTENT_HASH: None},
                     {schema.PERCEPTUAL_HASH: {"$not": {"$regex": f"^{HASH_PREFIX}"}}}]}
    todo = list(collection.find({**stale, schema.METADATA: {"$ne": None}}, {"filepath": 1}))
    ops = []
    hashes = hash_files([d["filepath"] for d in todo])
    for doc, result in track(zip(todo, hashes), total=len(todo), description="hashing images",
                             enabled=progress):
        if result is not None:
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": {schema.CONTENT_HASH: result[0],
                                                                schema.PERCEPTUAL_HASH: result[1]}}))
        if len(ops) >= WRITE_BATCH:
            collection.bulk_write(ops, ordered=False)
            ops = []
    if ops:
        collection.bulk_write(ops, ordered=False)
    return len(todo)


def mark_duplicates(dataset, *, progress: bool | None = None) -> DuplicateStats:
    """Hash what is missing, then (re)compute duplicate groups over the whole dataset."""
    declare_fields(dataset)
    stats = DuplicateStats(hashed_now=hash_unhashed(dataset, progress=progress))
    docs = list(dataset._sample_collection.find(
        {}, {schema.CONTENT_HASH: 1, schema.PERCEPTUAL_HASH: 1, schema.SOURCE: 1,
             schema.EXACT_DUPLICATE_GROUP: 1, schema.NEAR_DUPLICATE_GROUP: 1}))
    groups = find_groups([d.get(schema.CONTENT_HASH) for d in docs],
                         [d.get(schema.PERCEPTUAL_HASH) for d in docs])
    exact = _group_ids(docs, groups.exact)
    near = _group_ids(docs, groups.near)
    _write_groups(dataset, docs, exact, near)
    stats.exact_groups, stats.near_groups = len(groups.exact), len(groups.near)
    stats.samples_in_exact_groups = sum(map(len, groups.exact))
    stats.samples_in_near_groups = sum(map(len, groups.near))
    stats.cross_source_exact_groups = _cross_source(docs, groups.exact)
    stats.cross_source_near_groups = _cross_source(docs, groups.near)
    return stats


def _group_ids(docs, groups) -> dict[int, str]:
    return {i: str(docs[group[0]]["_id"]) for group in groups for i in group}


def _cross_source(docs, groups) -> int:
    return sum(len({docs[i].get(schema.SOURCE) for i in group}) > 1 for group in groups)


def _write_groups(dataset, docs, exact: dict[int, str], near: dict[int, str]) -> None:
    ops = []
    for i, doc in enumerate(docs):
        new = {schema.EXACT_DUPLICATE_GROUP: exact.get(i), schema.NEAR_DUPLICATE_GROUP: near.get(i)}
        if any(doc.get(k) != v for k, v in new.items()):
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": new}))
    for start in range(0, len(ops), WRITE_BATCH):
        dataset._sample_collection.bulk_write(ops[start:start + WRITE_BATCH], ordered=False)
