"""A small trained-and-evaluated dataset shared by the report, review and browser tests.

Built once per test process (training takes ~10 s on a CPU) and reused by every module that asks:
pytest gives each importing module its own fixture definition, so the cache is here, not in pytest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DATASET = "test-review-evaluated"
IMAGES = 24
EPOCHS = 8
_built: dict[str, "Evaluated"] = {}


@dataclass(frozen=True)
class Evaluated:
    name: str
    run_dir: Path
    report: dict  # eval.json
    seconds: float  # time to import, train and evaluate


def build_evaluated(root: Path) -> Evaluated:
    """Import synthetic VOC images, train the tiny SSD for a few epochs, evaluate on the val split."""
    if DATASET in _built:
        return _built[DATASET]
    import fiftyone as fo

    from curate.evaluate import evaluate_dataset
    from curate.ingest import import_path
    from curate.manifest import write_manifest
    from curate.recipe import Recipe, recipe_from_dict, recipe_to_dict
    from curate.synth import write_voc_folder
    from trainer.run import run_training

    start = time.perf_counter()
    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    folder = write_voc_folder(root / "voc", IMAGES, width=96, height=96, min_boxes=1, max_boxes=3)
    import_path(folder, dataset_name=DATASET, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(DATASET)
    classes = sorted(dataset.distinct("ground_truth.detections.label"))
    manifest = write_manifest(dataset, root / "m.jsonl", splits={"train": "train", "val": "val"},
                              classes=classes).path
    data = recipe_to_dict(Recipe())
    data["model"].update(backbone="tiny", image_size=[64, 64])
    data["augment"]["preset"] = "none"
    data["train"].update(epochs=EPOCHS, batch_size=8, workers=0, lr=0.05, val_every=4)
    run_dir = root / "run"
    run_training(recipe_from_dict(data), manifest, run_dir, progress=False)
    report = evaluate_dataset(dataset, run_dir, split="val", score_threshold=0.05)
    _built[DATASET] = Evaluated(DATASET, run_dir, report, time.perf_counter() - start)
    return _built[DATASET]


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory) -> Evaluated:
    yield build_evaluated(tmp_path_factory.mktemp("review-evaluated"))
    import fiftyone as fo

    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    _built.clear()
