"""``curate clean``: find, explain and quarantine bad data; keep the top-k classes. Deletes nothing.

Reads: ``ground_truth``, ``metadata``, declared sizes, tags, duplicate groups, the image files.
Writes: sample tags ``issue:<rule>`` and ``quarantine``, the sample field ``clean_findings`` ("rule: measured
value"); on boxes, label tags ``issue:<rule>`` / ``excluded_class`` and the attribute ``clean_findings``;
``has_excluded_class`` on samples holding a box of a class that is not kept (never a negative);
``dataset.info["curate_clean"]``. Before any sample's ``ground_truth`` is touched (findings or fixes) it is
copied to ``clean_backup``, so ``--undo`` restores the dataset exactly.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from pymongo import UpdateOne

from curate import clean_fixes, schema
from curate.clean_rules import RULES, SampleFacts, all_findings
from curate.progress import track
from curate.recipe import CleanSection

EXAMPLES_PER_RULE = 5
WRITE_BATCH = 1000
SPLIT_RANK = {"train": 0, "trainval": 0, "val": 1, "test": 2}  # a duplicate is kept where training is
_PROJECTION = {"filepath": 1, "tags": 1, "metadata.width": 1, "metadata.height": 1, schema.GROUND_TRUTH: 1,
               schema.DECLARED_WIDTH: 1, schema.DECLARED_HEIGHT: 1, schema.EXACT_DUPLICATE_GROUP: 1,
               schema.NEAR_DUPLICATE_GROUP: 1, schema.CLEAN_BACKUP: 1}


@dataclass
class CleanReport:
    dataset: str
    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # rule -> findings
    examples: dict[str, list[str]] = field(default_factory=dict)  # rule -> "filepath: detail"
    quarantined: int = 0
    fixes: dict[str, int] = field(default_factory=dict)
    classes_kept: list[str] | None = None
    boxes_excluded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        rules = {name: {"severity": RULES[name].severity, "fix": RULES[name].fix,
                        "explains": RULES[name].explains} for name in self.counts}
        return {**asdict(self), "rules": rules}


def run_clean(dataset, cfg: CleanSection = CleanSection(), *, fix: bool = False,
              classes: list[str] | None = None, inspect_files: bool = True,
              progress: bool | None = None) -> CleanReport:
    start = time.perf_counter()
    _declare_fields(dataset)
    docs = list(dataset._sample_collection.find({}, _PROJECTION))
    report = CleanReport(dataset.name, samples=len(docs))
    for doc in docs:
        clean_fixes.strip_clean_marks(doc)
    kept = _kept_classes(docs, cfg, classes)
    report.classes_kept = sorted(kept) if kept is not None else None
    facts = _facts(docs, kept, inspect_files, progress)
    for doc, sample in zip(docs, facts):
        _evaluate(sample, cfg)
        if fix and clean_fixes.apply_fixes(doc, sample, report.fixes):
            sample.boxes = doc[schema.GROUND_TRUTH]["detections"]
            _evaluate(sample, cfg)
    _write(dataset, docs, facts, kept, report)
    report.seconds = time.perf_counter() - start
    _save_info(dataset, report, cfg)
    return report


def _evaluate(sample: SampleFacts, cfg: CleanSection) -> None:
    sample.findings = all_findings(sample, cfg)


def _declare_fields(dataset) -> None:
    import fiftyone as fo

    from curate.fo_store import declare_import_fields

    declare_import_fields(dataset)
    flat = dataset.get_field_schema(flat=True)
    if schema.CLEAN_FINDINGS not in flat:
        dataset.add_sample_field(schema.CLEAN_FINDINGS, fo.ListField, subfield=fo.StringField)
    if schema.CLEAN_BACKUP not in flat:
        dataset.add_sample_field(schema.CLEAN_BACKUP, fo.DictField)
    box_field = f"{schema.GROUND_TRUTH}.detections.{schema.CLEAN_FINDINGS}"
    if box_field not in flat:
        dataset.add_sample_field(box_field, fo.ListField, subfield=fo.StringField)


def _kept_classes(docs, cfg: CleanSection, classes) -> set[str] | None:
    counts = Counter(d["label"] for doc in docs for d in clean_fixes.ground_truth_dicts(doc))
    kept = set(classes) if classes else None
    ranked = [label for label, n in counts.most_common() if n >= cfg.min_instances]
    if cfg.top_k:
        ranked = ranked[: cfg.top_k]
    if cfg.top_k or cfg.min_instances:
        kept = set(ranked) if kept is None else kept & set(ranked)
    return kept


def _facts(docs, kept, inspect_files: bool, progress) -> list[SampleFacts]:
    images = _inspect(docs, progress) if inspect_files else {}
    earlier_exact, earlier_near, leaks = _duplicate_flags(docs)
    facts = []
    for i, doc in enumerate(docs):
        meta = doc.get("metadata") or {}
        gt = doc.get(schema.GROUND_TRUTH)
        facts.append(SampleFacts(
            width=meta.get("width"), height=meta.get("height"), tags=doc.get("tags", []),
            boxes=None if gt is None else gt.get("detections", []),
            declared=(doc.get(schema.DECLARED_WIDTH), doc.get(schema.DECLARED_HEIGHT)),
            image=images.get(i), duplicate_of=earlier_exact.get(i), near_duplicate_of=earlier_near.get(i),
            split_leak=i in leaks,
            classes=frozenset(kept) if kept is not None else None))
    return facts


def _inspect(docs, progress) -> dict:
    from curate.image_checks import inspect_images

    todo = [i for i, d in enumerate(docs) if schema.TAG_MISSING_IMAGE not in d.get("tags", [])]
    results = inspect_images([docs[i]["filepath"] for i in todo])
    return dict(zip(todo, track(results, total=len(todo), description="inspecting images",
                                enabled=progress)))


def _split_rank(doc) -> int:
    ranks = [SPLIT_RANK[t] for t in doc.get("tags", []) if t in SPLIT_RANK]
    return min(ranks) if ranks else 0


def _duplicate_flags(docs) -> tuple[dict[int, str], dict[int, str], set[int]]:
    """Index -> the file it repeats (exact / near; the group's first sample is kept), and the copies
    sitting in a later split than the group's first."""
    exact: dict[int, str] = {}
    near: dict[int, str] = {}
    leaks: set[int] = set()
    for key, flagged in ((schema.EXACT_DUPLICATE_GROUP, exact), (schema.NEAR_DUPLICATE_GROUP, near)):
        groups = defaultdict(list)
        for i, doc in enumerate(docs):
            if doc.get(key):
                groups[doc[key]].append(i)
        for members in groups.values():
            members.sort(key=lambda i: (_split_rank(docs[i]), str(docs[i]["_id"])))
            flagged.update((i, docs[members[0]]["filepath"]) for i in members[1:])
            best = _split_rank(docs[members[0]])
            leaks.update(i for i in members if _split_rank(docs[i]) > best)
    return exact, {i: f for i, f in near.items() if i not in exact}, leaks


def _write(dataset, docs, facts, kept, report: CleanReport) -> None:
    ops = []
    for doc, sample in zip(docs, facts):
        update = clean_fixes.marks_update(doc, sample, kept)
        for finding in sample.findings:
            report.counts[finding.rule] = report.counts.get(finding.rule, 0) + 1
            examples = report.examples.setdefault(finding.rule, [])
            if len(examples) < EXAMPLES_PER_RULE:
                examples.append(f"{doc['filepath']}: {finding.detail}")
        report.quarantined += schema.TAG_QUARANTINE in update["$set"]["tags"]
        report.boxes_excluded += update.pop("excluded", 0)
        ops.append(UpdateOne({"_id": doc["_id"]}, update))
        if len(ops) >= WRITE_BATCH:
            dataset._sample_collection.bulk_write(ops, ordered=False)
            ops = []
    if ops:
        dataset._sample_collection.bulk_write(ops, ordered=False)
    report.counts = dict(sorted(report.counts.items(), key=lambda kv: -kv[1]))


def _save_info(dataset, report: CleanReport, cfg: CleanSection) -> None:
    dataset.info[schema.INFO_CLEAN] = {"ran_at": dt.datetime.now().isoformat(timespec="seconds"),
                                       "config": asdict(cfg), "report": report.to_dict()}
    dataset.save()


def undo_clean(dataset) -> int:
    """Restore every ground truth clean touched and remove every mark it left. Returns samples restored."""
    collection = dataset._sample_collection
    restored = 0
    ops = []
    for doc in collection.find({schema.CLEAN_BACKUP: {"$ne": None}}, {schema.CLEAN_BACKUP: 1}):
        original = copy.deepcopy(doc[schema.CLEAN_BACKUP]["ground_truth"])
        ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": {schema.GROUND_TRUTH: original}}))
        restored += 1
    if ops:
        collection.bulk_write(ops, ordered=False)
    collection.update_many({}, {"$pull": {"tags": {"$in": list(clean_fixes.SAMPLE_TAGS)}},
                                "$unset": {schema.CLEAN_FINDINGS: "", schema.CLEAN_BACKUP: ""}})
    collection.update_many({}, {"$pull": {"tags": {"$regex": f"^{schema.ISSUE_TAG_PREFIX}"}}})
    dataset.info.pop(schema.INFO_CLEAN, None)
    dataset.save()
    return restored


def training_view(dataset):
    """Samples a trainer may use: not quarantined and without unusable import tags."""
    return dataset.match_tags([schema.TAG_QUARANTINE, *schema.UNUSABLE_TAGS], bool=False)
