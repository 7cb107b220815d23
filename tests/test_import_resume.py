"""An import killed with SIGKILL mid-way is completed by running the same command again."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import fiftyone as fo

from curate.ingest import import_folder
from curate.synth import write_labelimg_folder

IMAGES = 1500
POLL_SECONDS = 0.02
DEADLINE_SECONDS = 120


def _count(name: str) -> int:
    if not fo.dataset_exists(name):
        return 0
    return fo.load_dataset(name)._sample_collection.count_documents({})


def test_kill9_mid_import_then_rerun_completes(tmp_path, dataset_name, curate_env, curate_cmd):
    root = write_labelimg_folder(tmp_path / "many", IMAGES, width=48, height=32, max_boxes=2)
    env = {**curate_env, "CURATE_WRITE_BATCH": "10"}
    proc = subprocess.Popen([*curate_cmd, "import", str(root), "--name", dataset_name, "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while _count(dataset_name) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = _count(dataset_name)
    assert 0 < written < IMAGES, f"the import was not interrupted mid-way ({written} written)"

    report = import_folder(root, dataset_name=dataset_name, progress=False)
    dataset = fo.load_dataset(dataset_name)
    assert report.added == IMAGES - written and report.unchanged == written
    assert len(dataset) == IMAGES
    assert len(set(dataset.values("filepath"))) == IMAGES
    assert dataset.count("ground_truth") == IMAGES  # every sample annotated, none half-written
