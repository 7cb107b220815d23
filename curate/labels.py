"""``curate labels``: the label vocabulary across sources, proposed variant groups, and mappings.

Reads: ``ground_truth`` labels and ``source``. Writes, with ``--map``: each mapped box's ``label`` and
(once) its ``original_label``; the dataset's active mapping (``dataset.info["curate_label_map"]``, which
later imports apply to new boxes too) and a history entry. ``--revert`` puts every box back to its
``original_label`` and clears the active mapping, so the dataset is as imported.

Variant groups are proposals; nothing is renamed until a mapping is applied. A group is labels that are
equal after case folding and removing separators, differ only by a ``-text`` suffix (a wordmark beside
its symbol: often a separate class on purpose, so it is proposed separately), or are within a small edit
distance (``Bouigues`` / ``Bouygues``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import yaml

from curate import schema
from curate.errors import CurateError

TEXT_SUFFIX = re.compile(r"[-_ ]?(text|schrift|schriftzug)$", re.IGNORECASE)
SEPARATORS = re.compile(r"[\s\-_.'&]+")
LONG_NAME = 10  # characters; longer names may differ in 2 edits and still be one brand
DETECTIONS = f"{schema.GROUND_TRUTH}.detections"


@dataclass
class LabelGroup:
    labels: list[str]  # most frequent first: the proposed canonical name
    reason: str
    counts: dict[str, dict[str, int]]  # label -> source -> boxes

    def to_dict(self) -> dict:
        return asdict(self)


def vocabulary(dataset) -> dict[str, dict[str, int]]:
    """label -> {source: number of boxes}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for source, labels in zip(dataset.values(schema.SOURCE), dataset.values(f"{DETECTIONS}.label")):
        for label in labels or ():
            counts[label][source] += 1
    return {label: dict(c) for label, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))}


def normalise(label: str) -> str:
    return SEPARATORS.sub("", label.casefold())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _deletions(word: str, depth: int) -> set[str]:
    found, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _close_pairs(keys: list[str]) -> set[tuple[str, str]]:
    """Pairs within 1 edit (2 for long names), via shared deletion variants (no all-pairs loop)."""
    buckets: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        for variant in _deletions(key, 2 if len(key) >= LONG_NAME else 1):
            buckets[variant].add(key)
    pairs = set()
    for members in buckets.values():
        for a, b in combinations(sorted(members), 2):
            limit = 2 if min(len(a), len(b)) >= LONG_NAME else 1
            if (a, b) not in pairs and edit_distance(a, b) <= limit:
                pairs.add((a, b))
    return pairs


def propose_groups(vocab: dict[str, dict[str, int]]) -> list[LabelGroup]:
    total = {label: sum(c.values()) for label, c in vocab.items()}
    by_key: dict[str, list[str]] = defaultdict(list)
    for label in vocab:
        by_key[normalise(label)].append(label)
    groups = [(labels, "case / separators") for labels in by_key.values() if len(labels) > 1]
    by_base: dict[str, list[str]] = defaultdict(list)
    for key, labels in by_key.items():
        by_base[TEXT_SUFFIX.sub("", key)].extend(labels)
    groups += [(labels, "-text variant") for base, labels in by_base.items()
               if len({normalise(x) for x in labels}) > 1]
    plain = [k for k in by_key if not TEXT_SUFFIX.search(k)]
    groups += [(by_key[a] + by_key[b], "edit distance") for a, b in sorted(_close_pairs(plain))]
    return [LabelGroup(sorted(labels, key=lambda x: (-total[x], x)), reason,
                       {x: vocab[x] for x in labels}) for labels, reason in groups]


def load_mapping(path: Path) -> dict[str, str]:
    """A YAML mapping ``old: new`` (optionally under a ``map:`` key), parsed with yaml.safe_load."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CurateError(f"{path}: cannot read the label map ({exc}); fix: write lines `old: new`")
    if isinstance(data, dict):
        data = data.get("map", {k: v for k, v in data.items() if k != "version"})
    data = {} if data is None else data
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise CurateError(f"{path}: the label map must be `old: new` pairs of strings "
                          "(optionally under `map:`); fix: quote names that YAML reads as numbers")
    return data


def compose(active: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """The mapping equal to applying ``active`` then ``new``, from original labels."""
    combined = {old: new.get(mid, mid) for old, mid in active.items()}
    combined.update({old: target for old, target in new.items() if old not in combined})
    return {old: target for old, target in combined.items() if old != target}


def apply_mapping(dataset, mapping: dict[str, str]) -> int:
    """Rename boxes by ``mapping``; returns how many boxes changed. Reversible (see revert)."""
    from curate.fo_store import declare_import_fields

    declare_import_fields(dataset)  # declares original_label
    collection, changed = dataset._sample_collection, 0
    for old, new in mapping.items():
        collection.update_many(
            {f"{DETECTIONS}.label": old},
            {"$set": {f"{DETECTIONS}.$[d].{schema.ORIGINAL_LABEL}": old}},
            array_filters=[{"d.label": old, f"d.{schema.ORIGINAL_LABEL}": None}])
        changed += _count_boxes(collection, old)
        collection.update_many({f"{DETECTIONS}.label": old},
                               {"$set": {f"{DETECTIONS}.$[d].label": new}},
                               array_filters=[{"d.label": old}])
    info = dataset.info
    info[schema.INFO_LABEL_MAP] = compose(info.get(schema.INFO_LABEL_MAP, {}), mapping)
    _log(dataset, {"action": "map", "mapping": mapping, "boxes_changed": changed})
    return changed


def revert(dataset) -> int:
    """Every box back to its ``original_label``; the active mapping cleared. Returns boxes changed."""
    collection = dataset._sample_collection
    changed = 0
    mapped = {DETECTIONS: {"$elemMatch": {schema.ORIGINAL_LABEL: {"$type": "string"}}}}
    for doc in collection.find(mapped, {DETECTIONS: 1}):
        detections = doc[schema.GROUND_TRUTH]["detections"]
        for det in detections:
            if det.get(schema.ORIGINAL_LABEL) is not None:
                det["label"] = det.pop(schema.ORIGINAL_LABEL)
                changed += 1
        collection.update_one({"_id": doc["_id"]}, {"$set": {DETECTIONS: detections}})
    dataset.info[schema.INFO_LABEL_MAP] = {}
    _log(dataset, {"action": "revert", "boxes_changed": changed})
    return changed


def map_boxes(boxes, mapping: dict[str, str]) -> None:
    """Apply the active mapping to freshly imported boxes (BoxRecord), keeping the original label."""
    for box in boxes or ():
        if box.label in mapping:
            box.attributes.setdefault(schema.ORIGINAL_LABEL, box.label)  # a reader may have renamed it
            box.label = mapping[box.label]


def _count_boxes(collection, label: str) -> int:
    pipeline = [{"$match": {f"{DETECTIONS}.label": label}}, {"$unwind": f"${DETECTIONS}"},
                {"$match": {f"{DETECTIONS}.label": label}}, {"$count": "n"}]
    return next(iter(collection.aggregate(pipeline)), {"n": 0})["n"]


def _log(dataset, entry: dict) -> None:
    history = list(dataset.info.get(schema.INFO_LABEL_HISTORY, []))
    history.append({"at": dt.datetime.now().isoformat(timespec="seconds"), **entry})
    dataset.info[schema.INFO_LABEL_HISTORY] = history
    dataset.save()
