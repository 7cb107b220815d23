"""QMUL-OpenLogo: a Pascal VOC layout (``Annotations/``, ``JPEGImages/``) whose split lists live in
``ImageSets/Main/train_test/*.txt`` (e.g. ``train_all.txt``, ``test_all.txt``), one image stem a line.

Everything but the split lists is plain VOC, so records come from the VOC reader (curate/formats/voc.py):
same coordinates (``VOC_ONE_BASED``, the devkit's 1-based pixel indices), same image lookup, same error
policy; this module only relabels them ``openlogo`` and adds split tags. A list's split is the first of
``trainval``/``train``/``val``/``test`` found in its file name; lists naming none of them are ignored and
noted (``split_lists_ignored``). The VOC layout's own ``ImageSets/Main/*.txt`` tags are kept too. Images
listed for both training and testing (by different lists) keep both tags and are counted
(``images_in_train_and_test_lists``) so ``curate balance`` can see the conflict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from curate import schema
from curate.boxes import PixelConvention
from curate.formats import voc
from curate.formats.records import ReadContext, SampleRecord, SkippedFile

NAME = "openlogo"
CONVENTION = PixelConvention.VOC_ONE_BASED
SPLIT_LISTS_DIR = Path("ImageSets", "Main", "train_test")
_SPLIT_IN_NAME = re.compile(r"trainval|train|val|test")  # leftmost wins; trainval tried before train


def _openlogo_root(path: Path) -> Path | None:
    root = voc.find_voc_root(path)
    return root if root is not None and (root / SPLIT_LISTS_DIR).is_dir() else None


def detect(path: Path) -> str | None:
    root = _openlogo_root(path)
    return None if root is None else f"found QMUL-OpenLogo layout at {root} (VOC with {SPLIT_LISTS_DIR}/)"


def count(path: Path, ctx: ReadContext) -> int:
    return voc.count(path, ctx)


def read(path: Path, ctx: ReadContext) -> Iterator[SampleRecord | SkippedFile]:
    root = _openlogo_root(path)
    if root is None:
        raise FileNotFoundError(f"{path}: no VOC layout with {SPLIT_LISTS_DIR}/ found")
    splits = read_split_lists(root / SPLIT_LISTS_DIR, ctx)
    for record in voc.read(root, ctx):
        if isinstance(record, SampleRecord):
            record.source_format = NAME
            record.tags = _merge_split_tags(record.tags, splits.get(Path(record.filepath).stem, set()))
            ctx.stats["images_in_train_and_test_lists"] += {"train", "test"} <= set(record.tags)
        yield record


def read_split_lists(folder: Path, ctx: ReadContext) -> dict[str, set[str]]:
    """Image stem -> the splits of the lists that name it."""
    listed: dict[str, set[str]] = {}
    for list_file in sorted(folder.glob("*.txt")):
        match = _SPLIT_IN_NAME.search(list_file.stem.lower())
        if match is None:
            ctx.note("split_lists_ignored", str(list_file))
            continue
        for line in list_file.read_text(errors="replace").splitlines():
            stem = line.strip().split(" ")[0]
            if stem:
                listed.setdefault(stem, set()).add(match.group())
    return listed


def _merge_split_tags(tags: list[str], splits: set[str]) -> list[str]:
    merged = set(tags) | splits
    if schema.TAG_TRAINVAL in merged and merged & {"train", "val"}:
        merged.discard(schema.TAG_TRAINVAL)
    return sorted(merged)
