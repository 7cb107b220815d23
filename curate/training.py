"""``curate train``'s library half: write the manifest, then run the trainer in a child process.

The child (``python -m trainer``) never imports fiftyone or holds a MongoDB client, so its DataLoader
workers fork safely; it reads only the manifest and the recipe.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from curate.errors import CurateError


def run_folder(recipe_path: Path, recipe, out: Path | None) -> Path:
    return out or Path("runs") / (recipe.name or recipe_path.stem)


def prepare_manifest(recipe, dataset_name: str, run_dir: Path, *, reuse: bool):
    """Write ``run_dir/manifest.jsonl`` (or keep the existing one when ``reuse``); returns its path and
    the ManifestInfo (None when reused)."""
    import fiftyone as fo

    from curate.manifest import choose_classes, write_manifest

    manifest = run_dir / "manifest.jsonl"
    if reuse and manifest.is_file():
        return manifest, None
    if not dataset_name or not fo.dataset_exists(dataset_name):
        raise CurateError(f"dataset {dataset_name!r} not found; fix: set `dataset:` in the recipe or pass "
                          "--dataset")
    dataset = fo.load_dataset(dataset_name)
    info = write_manifest(dataset, manifest, splits={"train": recipe.data.train_split,
                                                     "val": recipe.data.val_split},
                          classes=choose_classes(dataset, recipe.data.classes))
    return manifest, info


def run_trainer(recipe_path: Path, manifest: Path, run_dir: Path, *, resume: bool = False,
                progress: bool = True) -> int:
    command = [sys.executable, "-m", "trainer", str(recipe_path), "--manifest", str(manifest),
               "--out", str(run_dir)]
    command += ["--resume"] if resume else []
    command += [] if progress else ["--no-progress"]
    return subprocess.call(command)
