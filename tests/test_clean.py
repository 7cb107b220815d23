"""`curate clean` on a real dataset: every rule found where it should be, fixes, top-k, exact undo."""

from __future__ import annotations

import shutil

import fiftyone as fo
import pytest
from factories import box, make_labelimg_xml

from curate import schema
from curate.clean import run_clean, training_view, undo_clean
from curate.ingest import import_path
from curate.recipe import CleanSection
from curate.synth import render_image


def _photo(path, seed, size=(100, 80)):
    image, _ = render_image(seed, *size, max_boxes=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)


@pytest.fixture
def defects(tmp_path):
    """One image per defect, 100x80 px each (seeded textures so no two are near duplicates)."""
    root = tmp_path / "defects"
    cases = {
        "good": [box("cat", 10, 10, 40, 40)],
        "degenerate": [box("cat", 10, 10, 10, 30), box("cat", 50, 10, 80, 40)],
        "outside": [box("cat", 60, 10, 110, 40)],
        "tiny": [box("cat", 10, 10, 11, 11)],
        "double": [box("cat", 10, 10, 50, 50), box("cat", 10, 10, 50, 51)],
        "whole": [box("cat", 0, 0, 100, 80)],
        "spaces": [box("big  cat", 10, 10, 40, 40)],
        "empty": [],
    }
    for seed, (name, boxes) in enumerate(cases.items()):
        _photo(root / f"{name}.jpg", seed)
        make_labelimg_xml(root / f"{name}.xml", f"{name}.jpg", (100, 80), boxes)
    _photo(root / "resized.jpg", 50)  # annotated on a 200x160 original, then resized to 100x80
    make_labelimg_xml(root / "resized.xml", "resized.jpg", (200, 160), [box("cat", 100, 80, 180, 150)])
    return root


def _by_name(dataset, name):
    return dataset.match(fo.ViewField("filepath").ends_with(f"/{name}.jpg")).first()


def _import(root, name):
    import_path(root, dataset_name=name, progress=False)
    return fo.load_dataset(name)


def test_each_rule_fires_on_its_defect_only(defects, dataset_name):
    dataset = _import(defects, dataset_name)
    report = run_clean(dataset, inspect_files=False, progress=False)
    expected = {"degenerate_box": ["degenerate"], "box_outside_image": ["outside"], "tiny_box": ["tiny"],
                "duplicate_box": ["double"], "box_covers_image": ["whole"], "label_whitespace": ["spaces"],
                "empty_annotation": ["empty"], "size_mismatch_rescale": ["resized"]}
    for rule, names in expected.items():
        tagged = dataset.match_tags(schema.ISSUE_TAG_PREFIX + rule).values("filepath")
        assert sorted(p.rsplit("/", 1)[1][:-4] for p in tagged) == names, rule
        assert report.counts[rule] == len(names)
    assert set(report.counts) == set(expected)
    assert sorted(p.rsplit("/", 1)[1] for p in dataset.match_tags(schema.TAG_QUARANTINE).values("filepath")) \
        == ["degenerate.jpg", "resized.jpg"]
    assert _by_name(dataset, "good").tags == []


def test_findings_carry_the_measured_value_on_the_box(defects, dataset_name):
    dataset = _import(defects, dataset_name)
    run_clean(dataset, inspect_files=False, progress=False)
    outside = _by_name(dataset, "outside")
    (det,) = outside.ground_truth.detections
    assert det.tags == ["issue:box_outside_image"]
    assert det[schema.CLEAN_FINDINGS] == ["box_outside_image: 10.0 px outside"]
    assert outside[schema.CLEAN_FINDINGS] == ["box_outside_image: 10.0 px outside"]


def test_running_twice_changes_nothing(defects, dataset_name):
    dataset = _import(defects, dataset_name)
    first = run_clean(dataset, inspect_files=False, progress=False)
    snapshot = _docs(dataset)
    second = run_clean(dataset, inspect_files=False, progress=False)
    assert first.counts == second.counts and _docs(dataset) == snapshot


def test_fix_then_undo_restores_the_dataset_exactly(defects, dataset_name):
    dataset = _import(defects, dataset_name)
    before = _docs(dataset)
    report = run_clean(dataset, fix=True, inspect_files=False, progress=False)
    assert report.fixes == {"drop_box": 1, "clip_box": 1, "normalise_label": 1, "rescale_boxes": 1}
    assert [d.label for d in _by_name(dataset, "degenerate").ground_truth.detections] == ["cat"]
    x, y, w, h = _by_name(dataset, "outside").ground_truth.detections[0].bounding_box
    assert x + w == pytest.approx(1.0)
    resized = _by_name(dataset, "resized").ground_truth.detections[0].bounding_box
    assert resized == pytest.approx([0.5, 0.5, 0.4, 0.4375])
    assert _by_name(dataset, "spaces").ground_truth.detections[0].label == "big cat"
    assert len(dataset.match_tags(schema.TAG_QUARANTINE)) == 0  # what quarantined them is fixed
    undo_clean(dataset)
    assert _docs(dataset) == before


def test_top_k_excludes_rare_classes_and_protects_their_images(tmp_path, dataset_name):
    root = tmp_path / "k"
    layout = {"a1": ["a", "a"], "a2": ["a", "b"], "a3": ["a", "c"], "b1": ["b"]}
    for seed, (name, labels) in enumerate(layout.items()):
        _photo(root / f"{name}.jpg", seed)
        make_labelimg_xml(root / f"{name}.xml", f"{name}.jpg", (100, 80),
                          [box(lab, 5 + 20 * i, 5, 20 + 20 * i, 30) for i, lab in enumerate(labels)])
    dataset = _import(root, dataset_name)
    report = run_clean(dataset, CleanSection(top_k=2), inspect_files=False, progress=False)
    assert report.classes_kept == ["a", "b"] and report.boxes_excluded == 1
    assert dataset.match_tags(schema.TAG_HAS_EXCLUDED_CLASS).values("filepath")[0].endswith("a3.jpg")
    excluded = dataset.filter_labels("ground_truth", fo.ViewField("tags").contains("excluded_class"))
    assert excluded.count("ground_truth.detections") == 1


def test_duplicate_across_splits_quarantines_the_later_split(tmp_path, dataset_name):
    from curate.synth import write_voc_folder

    root = write_voc_folder(tmp_path / "voc", 5, width=96, height=72)  # 000000-000003 train, 000004 val
    shutil.copy(root / "JPEGImages" / "000000.jpg", root / "JPEGImages" / "000004.jpg")
    dataset = _import(root, dataset_name)
    report = run_clean(dataset, inspect_files=False, progress=False)
    assert report.counts["duplicate_across_splits"] == 1
    leaked = dataset.match_tags("issue:duplicate_across_splits").first()
    assert "val" in leaked.tags and schema.TAG_QUARANTINE in leaked.tags
    assert len(training_view(dataset)) == 4


def _docs(dataset):
    return sorted((_without_times(d) for d in dataset._sample_collection.find({})), key=lambda d: d["filepath"])


def _without_times(doc):
    doc.pop("last_modified_at", None)
    return doc
