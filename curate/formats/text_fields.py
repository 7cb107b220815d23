"""Helpers shared by the line-oriented readers (FlickrLogos, BelgaLogos, Logos in the Wild): typed
field parsing that names ``line N: field``, a per-image digest, and a breadth-first folder search."""

from __future__ import annotations

import hashlib
import math
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

from curate.errors import InvalidValueError, MissingFieldError

SEARCH_DEPTH = 2  # a download usually unpacks its own folder one level below the folder given

def find_folder(path: Path, matches: Callable[[Path], bool], depth: int = SEARCH_DEPTH) -> Path | None:
    """The first folder (breadth first, sorted) at ``path`` or up to ``depth`` levels below that matches."""
    queue = deque([(path, 0)])
    while queue:
        folder, level = queue.popleft()
        try:
            if matches(folder):
                return folder
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        if level < depth:
            queue.extend((child, level + 1) for child in children)
    return None


def parse_fields(tokens: Sequence[str], names: Sequence[str], numeric: Sequence[str], *, path: str,
                 line_no: int, fix: str) -> dict:
    """``tokens`` named by ``names``; the ``numeric`` ones as finite floats. Raises a typed error naming
    ``line N: field``."""
    if len(tokens) < len(names):
        raise MissingFieldError(path, f"line {line_no}: {names[len(tokens)]}",
                                f"{len(tokens)} fields, expected {len(names)} ({' '.join(names)})", fix)
    if len(tokens) > len(names):
        raise InvalidValueError(path, f"line {line_no}",
                                f"{len(tokens)} fields, expected {len(names)} ({' '.join(names)})", fix)
    values: dict = dict(zip(names, tokens))
    for name in numeric:
        values[name] = parse_number(values[name], path=path, where=f"line {line_no}: {name}")
    return values


def parse_number(raw: str, *, path: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidValueError(path, where, f"{raw!r} is not a finite number",
                                "write the pixel coordinate as a number")
    return value


def digest_of_lines(lines: Sequence[str]) -> str:
    """sha1 of the lines that describe one image, so a re-import sees when they change."""
    return hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()
