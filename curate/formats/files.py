"""Finding files: which extensions are images, walking a folder in a stable order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, sorted, so that imports are deterministic."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def find_image_beside(directory: Path, stem: str) -> Path | None:
    """An image named ``stem.<any image extension>`` in ``directory``, if there is one."""
    for ext in sorted(IMAGE_EXTENSIONS):
        for candidate in (directory / f"{stem}{ext}", directory / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def basename_of(filename: str) -> str:
    """The file name in an annotation's ``<filename>``, which may be a Windows or POSIX path."""
    return os.path.basename(filename.replace("\\", "/"))
