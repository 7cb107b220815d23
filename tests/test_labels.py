"""`curate labels`: variant groups, label maps applied on a real dataset, and an exact revert."""

from __future__ import annotations

import fiftyone as fo
import pytest
from factories import box, make_image, make_labelimg_xml

from curate import schema
from curate.cli.render_labels import proposal_yaml
from curate.errors import CurateError
from curate.ingest import import_path
from curate.labels import (apply_mapping, compose, edit_distance, load_mapping, propose_groups, revert,
                           vocabulary)


def test_edit_distance_by_hand():
    assert edit_distance("bouigues", "bouygues") == 1
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3


def test_groups_case_text_suffix_and_typos():
    vocab = {"Bouygues": {"a": 30}, "Bouigues": {"b": 2}, "Citroen": {"a": 9}, "citroen": {"b": 3},
             "Citroen-text": {"a": 4}, "Nike": {"a": 50}, "Adidas": {"a": 20}, "Puma": {"a": 5}}
    groups = {(g.reason, tuple(g.labels)) for g in propose_groups(vocab)}
    assert groups == {("case / separators", ("Citroen", "citroen")),
                      ("-text variant", ("Citroen", "Citroen-text", "citroen")),
                      ("edit distance", ("Bouygues", "Bouigues"))}


def test_compose_follows_chains_from_original_labels():
    assert compose({"a": "b"}, {"b": "c", "x": "y"}) == {"a": "c", "x": "y", "b": "c"}
    assert compose({"a": "b"}, {"b": "a"}) == {"b": "a"}


def test_proposal_round_trips_and_bad_maps_are_refused(tmp_path):
    vocab = {"Bouygues": {"a": 30}, "Bouigues": {"b": 2}, "X-text": {"a": 1}, "X": {"a": 3}}
    (tmp_path / "map.yaml").write_text(proposal_yaml(propose_groups(vocab)))
    assert load_mapping(tmp_path / "map.yaml") == {"Bouigues": "Bouygues"}  # -text stays commented
    (tmp_path / "bad.yaml").write_text("map:\n  a: [1, 2]\n")
    with pytest.raises(CurateError, match="bad.yaml"):
        load_mapping(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("map: {a: b\n")
    with pytest.raises(CurateError, match="broken.yaml"):
        load_mapping(tmp_path / "broken.yaml")


def _two_sources(root):
    for source, label in (("press", "Bouygues"), ("web", "Bouigues")):
        make_image(root / source / "a.jpg", 64, 48)
        make_labelimg_xml(root / source / "a.xml", "a.jpg", (64, 48),
                          [box(label, 1, 1, 20, 20), box("Nike", 30, 30, 40, 40)])
    return root


def test_map_then_reimport_then_revert_restores_exactly(tmp_path, dataset_name):
    root = _two_sources(tmp_path / "logos")
    import_path(root, dataset_name=dataset_name, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(dataset_name)
    before = dataset.values("ground_truth.detections.label")
    assert vocabulary(dataset) == {"Nike": {"press": 1, "web": 1}, "Bouygues": {"press": 1},
                                   "Bouigues": {"web": 1}}

    assert apply_mapping(dataset, {"Bouigues": "Bouygues"}) == 1
    assert vocabulary(dataset)["Bouygues"] == {"press": 1, "web": 1}
    assert dataset.values("ground_truth.detections.original_label") in (
        [[None, None], ["Bouigues", None]], [["Bouigues", None], [None, None]])

    make_image(root / "web" / "b.jpg", 64, 48)
    make_labelimg_xml(root / "web" / "b.xml", "b.jpg", (64, 48), [box("Bouigues", 2, 2, 30, 30)])
    import_path(root, dataset_name=dataset_name, find_duplicates=False, progress=False)
    dataset.reload()
    assert "Bouigues" not in vocabulary(dataset)  # the active map applies to new boxes too

    assert revert(dataset) == 2
    dataset.reload()
    first_two = dataset.match(fo.ViewField("filepath").ends_with("a.jpg"))
    assert sorted(map(tuple, first_two.values("ground_truth.detections.label"))) == sorted(map(tuple, before))
    assert dataset.count_values("ground_truth.detections.label")["Bouigues"] == 2
    assert dataset.info[schema.INFO_LABEL_MAP] == {}
    assert [h["action"] for h in dataset.info[schema.INFO_LABEL_HISTORY]] == ["map", "revert"]
