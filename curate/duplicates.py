"""Exact and near-duplicate groups from the hashes in curate/hashing.py.

Exact: equal content hashes. Near: perceptual hashes within ``NEAR_DUPLICATE_BITS`` bits (Hamming
distance), found without comparing all pairs: split the hash bits into ``NEAR_DUPLICATE_BITS + 1`` chunks;
two hashes that differ in at most that many bits agree on at least one whole chunk (pigeonhole), so only
hashes sharing a chunk are compared. Groups are connected components (union-find).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from curate.hashing import colour_value, hash_value

HASH_BITS = 256
# 256-bit dHash: re-encoded / resized copies measured within 16 bits, unrelated photos beyond 24
# (curate/hashing.py has the measurement).
NEAR_DUPLICATE_BITS = 16
COLOUR_TOLERANCE = 12.0  # mean absolute difference of the 4x4 RGB thumbnails, in 0-255 levels
PAIR_BLOCK = 512  # rows compared at once inside a bucket: bounds memory to 512 x bucket x 32 bytes


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DuplicateGroups:
    exact: list[list[int]]  # indices into the inputs, each group sorted, groups of size >= 2
    near: list[list[int]]  # near-duplicate groups (exact duplicates included)


def _components(n: int, pairs) -> list[list[int]]:
    uf = _UnionFind(n)
    for a, b in pairs:
        uf.union(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _chunk_bounds(max_bits: int) -> list[tuple[int, int]]:
    chunks = max_bits + 1
    edges = [round(HASH_BITS * k / chunks) for k in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _words(values: list[int]) -> np.ndarray:
    """256-bit integers as [n, 4] uint64 columns, for vectorised popcounts."""
    mask = (1 << 64) - 1
    return np.array([[(v >> (64 * k)) & mask for k in range(HASH_BITS // 64)] for v in values],
                    dtype=np.uint64).reshape(len(values), HASH_BITS // 64)


def _close_within(rows: np.ndarray, words: np.ndarray, max_bits: int):
    """Pairs (i < j) of ``rows`` whose hashes differ in at most ``max_bits`` bits, in blocks of rows."""
    block = words[rows]
    for start in range(0, len(rows), PAIR_BLOCK):
        part = block[start:start + PAIR_BLOCK]
        distance = np.bitwise_count(part[:, None, :] ^ block[None, :, :]).sum(axis=-1)
        a, b = np.nonzero(distance <= max_bits)
        keep = start + a < b
        yield from zip(rows[start + a[keep]].tolist(), rows[b[keep]].tolist())


def near_pairs(hashes: Sequence[int | None], max_bits: int = NEAR_DUPLICATE_BITS):
    """Index pairs whose hashes differ in at most ``max_bits`` bits."""
    valid = [i for i, h in enumerate(hashes) if h is not None]
    words = np.zeros((len(hashes), HASH_BITS // 64), dtype=np.uint64)
    if valid:
        words[valid] = _words([hashes[i] for i in valid])
    seen = set()
    for lo, hi in _chunk_bounds(max_bits):
        mask = ((1 << (hi - lo)) - 1) << lo
        buckets: dict[int, list[int]] = defaultdict(list)
        for i in valid:
            buckets[hashes[i] & mask].append(i)
        for members in buckets.values():
            if len(members) > 1:
                for pair in _close_within(np.array(members), words, max_bits):
                    if pair not in seen:
                        seen.add(pair)
                        yield pair


def _same_colours(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return True  # no colour recorded: the dHash decides alone
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) <= COLOUR_TOLERANCE


def find_groups(content_hashes: Sequence[str | None], perceptual_hashes: Sequence[str | None],
                max_bits: int = NEAR_DUPLICATE_BITS) -> DuplicateGroups:
    index: dict[str, int] = {}
    exact_pairs = []
    for i, h in enumerate(content_hashes):
        if h is None:
            continue
        if h in index:
            exact_pairs.append((index[h], i))
        else:
            index[h] = i
    values = [hash_value(h) for h in perceptual_hashes]
    colours = [colour_value(h) for h in perceptual_hashes]
    near = [(a, b) for a, b in near_pairs(values, max_bits) if _same_colours(colours[a], colours[b])]
    n = len(content_hashes)
    return DuplicateGroups(exact=_components(n, exact_pairs), near=_components(n, exact_pairs + near))
