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

from curate.hashing import hash_value

HASH_BITS = 256
# 256-bit dHash: re-encoded / resized copies measured within 16 bits, unrelated photos beyond 24
# (curate/hashing.py has the measurement).
NEAR_DUPLICATE_BITS = 16


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


def near_pairs(hashes: Sequence[int | None], max_bits: int = NEAR_DUPLICATE_BITS):
    """Index pairs whose hashes differ in at most ``max_bits`` bits."""
    seen = set()
    for lo, hi in _chunk_bounds(max_bits):
        mask = ((1 << (hi - lo)) - 1) << lo
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, value in enumerate(hashes):
            if value is not None:
                buckets[value & mask].append(i)
        for members in buckets.values():
            for x, a in enumerate(members):
                for b in members[x + 1:]:
                    if (a, b) not in seen and bin(hashes[a] ^ hashes[b]).count("1") <= max_bits:
                        seen.add((a, b))
                        yield a, b


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
    near = list(near_pairs(values, max_bits))
    n = len(content_hashes)
    return DuplicateGroups(exact=_components(n, exact_pairs), near=_components(n, exact_pairs + near))
