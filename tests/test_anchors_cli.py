"""`curate anchors --fit` end to end: boxes from a real dataset, coverage table, recipe rewritten."""

from __future__ import annotations

import shutil
from pathlib import Path

import fiftyone as fo
import numpy as np

from curate import anchors
from curate.ingest import import_path
from curate.recipe import load_recipe
from curate.synth import write_voc_folder

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def test_fit_writes_anchors_the_recipe_loads_and_records_it(tmp_path, dataset_name):
    import_path(write_voc_folder(tmp_path / "voc", 30, width=160, height=120), dataset_name=dataset_name,
                progress=False)
    dataset = fo.load_dataset(dataset_name)
    recipe_path = shutil.copy(RECIPE, tmp_path / "r.yaml")
    recipe = load_recipe(recipe_path)
    sample = anchors.training_boxes(dataset, "train")
    assert len(sample.labels) == dataset.match_tags("train").count("ground_truth.detections")
    report, result = anchors.compare_and_fit(recipe, sample, fit=True, seed=0)
    fitted = report.coverage["fitted"]["overall"]["coverage"]
    assert fitted >= report.coverage["recipe (current)"]["overall"]["coverage"] - 1e-9
    assert recipe.anchors.fit  # demo.yaml asks `curate run` to fit: rewriting must keep that
    text = anchors.write_into_recipe(Path(recipe_path).read_text(),
                                     anchors.anchors_yaml(result.spec, report, current=recipe.anchors))
    Path(recipe_path).write_text(text)
    again = load_recipe(recipe_path)
    assert again.anchors.scales == result.spec.scales and again.model == recipe.model and again.anchors.fit
    assert text.count("anchors:") == 1 and "grid-aware coverage" in text
    rewritten = anchors.write_into_recipe(text, anchors.anchors_yaml(result.spec, report))
    assert rewritten.count("\nanchors:") == 1  # a second fit replaces the section, not appends
    anchors.record_on_dataset(dataset, report)
    assert dataset.info[anchors.INFO_ANCHORS]["boxes"] == len(sample.labels)


def test_letterbox_relative_boxes_include_the_padding():
    sample = anchors.BoxSample(boxes_px=np.array([[0.0, 0.0, 100.0, 50.0]]),
                               image_wh=np.array([[100.0, 50.0]]), labels=["a"], view="t")
    rel = anchors.relative_on_input(sample, (100, 100), "letterbox")
    assert rel.tolist() == [[0.0, 0.25, 1.0, 0.75]]
