"""Fingerprints of what a `curate run` stage reads, and the words for what changed.

A stage's fingerprint is the hash of (the recipe settings it reads, the fingerprint of the stage before
it, and what it reads from outside the recipe: for import, every source file's name, size and mtime and
the dataset's id; for train, the dataset's tag and label counts and box-coordinate sum — see
curate/pipeline.py). Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DIGEST_CHARS = 16  # 64 bits: enough to tell two states of one run folder apart


def digest(value) -> str:
    """Stable hash of plain data (dict key order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def folder_listing(folder: Path) -> dict:
    """Every file under ``folder`` as (relative name, size, mtime in ns), summarised:
    ``{"files", "bytes", "digest"}`` — the digest changes when a file appears, goes, grows or is touched.

    Walked as import walks it (curate/formats/files.py ``walk_files``): links to folders are not followed
    (import never reads what is under them, and a link to a parent would loop); a link to a file counts
    with its target's size and mtime."""
    entries = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:  # a dangling link: import reports it; here it only has to be stable
                entries.append((str(path.relative_to(folder)), -1, 0))
                continue
            entries.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return {"files": len(entries), "bytes": sum(max(e[1], 0) for e in entries), "digest": digest(entries)}


def flatten(value, prefix: str = "") -> dict:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (lists stay values)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, inner in value.items():
        flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_settings(old: dict, new: dict, *, limit: int = 3) -> list[str]:
    """``["train.lr 0.01 -> 0.02", ...]``: the settings that differ, at most ``limit`` named."""
    before, after = flatten(old), flatten(new)
    keys = sorted(set(before) | set(after))
    changes = [f"{k} {_short(before.get(k))} -> {_short(after.get(k))}" for k in keys
               if before.get(k) != after.get(k)]
    if len(changes) > limit:
        changes = changes[:limit] + [f"and {len(changes) - limit} more"]
    return changes


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
