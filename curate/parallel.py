"""One way to run a per-file function over many files in worker processes, results in input order."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
CHUNK = 64  # files per task sent to a worker; below two chunks a pool costs more than it saves


def map_files(function: Callable[[str], T], paths: Iterable[str], *, workers: int | None = None) -> Iterator[T]:
    """``function(path)`` for each path, in order, in ``workers`` processes (default: all cores).

    Workers are spawned, not forked: the parent usually holds a MongoDB client, which must not be forked.
    ``function`` must be importable at module level (it is pickled by name).
    """
    paths = list(paths)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(paths) < 2 * CHUNK:
        yield from map(function, paths)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(function, paths, chunksize=CHUNK)
