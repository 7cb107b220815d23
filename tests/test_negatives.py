"""`curate negatives --mine`: the background images the model fires on are the ones chosen, and undo is exact."""

from __future__ import annotations

import shutil

import fiftyone as fo
import numpy as np
import pytest
from factories import train_tiny_run
from PIL import Image

from curate import schema
from curate.ingest import import_folder, import_path
from curate.negatives import SCORE_FIELD, TAG_HARD_NEGATIVE, VIEW, mine_hard_negatives, undo_mining
from curate.synth import write_voc_folder

HARD, EASY = 4, 4


@pytest.fixture(scope="module")
def mined_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("negatives")
    name = "test-negatives-module"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    voc = write_voc_folder(root / "voc", 24, width=96, height=96, min_boxes=1, max_boxes=2)
    import_path(voc, dataset_name=name, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(name)
    run = train_tiny_run(dataset, root, epochs=25, val_every=25)
    # the pool: unannotated copies of training images (the model fires there) and flat grey images
    background = root / "background"
    background.mkdir()
    trained_on = (voc / "ImageSets" / "Main" / "train.txt").read_text().split()[:HARD]
    for stem in trained_on:
        shutil.copy(voc / "JPEGImages" / f"{stem}.jpg", background / f"hard-{stem}.jpg")
    for i in range(EASY):
        Image.fromarray(np.full((96, 96, 3), 90 + 20 * i, np.uint8)).save(background / f"easy-{i}.jpg")
    import_folder(background, dataset_name=name, fmt="labelimg", source="negatives",
                  progress=False)
    yield dataset, run
    fo.delete_dataset(name)


def test_the_images_the_model_fires_on_are_mined(mined_setup):
    dataset, run = mined_setup
    report = mine_hard_negatives(dataset, run, count=HARD, progress=False)
    assert report["pool"] == HARD + EASY
    chosen = dataset.load_saved_view(VIEW)
    names = sorted(p.rsplit("/", 1)[1] for p in chosen.values("filepath"))
    assert len(names) == HARD and all(n.startswith("hard-") for n in names), (names, report["hardest"])
    scores = chosen.values(SCORE_FIELD)
    assert scores == sorted(scores, reverse=True) and min(scores) > 0
    assert all({schema.TAG_NEGATIVE_SELECTED, TAG_HARD_NEGATIVE, "train"} <= set(t) for t in chosen.values("tags"))
    assert all(len(d.detections) > 0 for d in chosen.values("hard_negative_predictions"))


def test_undo_restores_the_tags_exactly(mined_setup):
    dataset, run = mined_setup
    undo_mining(dataset)
    before = dict(zip(*dataset.values(["id", "tags"])))
    mine_hard_negatives(dataset, run, count=2, progress=False)
    assert len(dataset.match_tags(TAG_HARD_NEGATIVE)) == 2
    assert undo_mining(dataset) == 2
    assert dict(zip(*dataset.values(["id", "tags"]))) == before
    assert not dataset.has_saved_view(VIEW) and dataset.exists(SCORE_FIELD).count() == 0


def test_an_empty_pool_is_a_clear_error(dataset_name, tmp_path):
    from curate.errors import CurateError

    voc = write_voc_folder(tmp_path / "voc", 3, width=64, height=64, min_boxes=1, max_boxes=1)
    import_path(voc, dataset_name=dataset_name, find_duplicates=False, progress=False)
    with pytest.raises(CurateError, match="no background images left to mine.*fix"):
        mine_hard_negatives(fo.load_dataset(dataset_name), tmp_path / "no-run", count=1)


def test_balance_keeps_mined_negatives_and_undo_stays_exact_over_rounds(mined_setup):
    from curate.balance import load_table, select_negatives, undo_balance

    dataset, run = mined_setup
    undo_mining(dataset)
    rebalance = dict(ratio=6.0, fractions={"train": 1.0}, seed=0)
    select_negatives(dataset, load_table(dataset), **rebalance)  # its split tags stay after undo: data
    undo_balance(dataset)
    before = dict(zip(*dataset.values(["id", "tags"])))
    mine_hard_negatives(dataset, run, count=2, progress=False)
    mined = set(dataset.match_tags(TAG_HARD_NEGATIVE).values("id"))
    chosen = select_negatives(dataset, load_table(dataset), **rebalance)
    assert chosen["selected"] > 0
    undo_balance(dataset)
    assert set(dataset.match_tags(schema.TAG_NEGATIVE_SELECTED).values("id")) == mined  # balance left them
    mine_hard_negatives(dataset, run, count=2, progress=False)  # a second round adds two more
    assert len(dataset.match_tags(TAG_HARD_NEGATIVE)) == 4
    undo_mining(dataset)
    assert dict(zip(*dataset.values(["id", "tags"]))) == before


def test_background_in_another_split_is_not_mined(mined_setup):
    from curate.errors import CurateError

    dataset, run = mined_setup
    undo_mining(dataset)
    hard = dataset.match(fo.ViewField("filepath").contains_str("/hard-"))
    original = {s.id: list(s.tags) for s in hard}
    for sample in hard:
        sample.tags = [t for t in sample.tags if t not in schema.SPLIT_TAGS] + ["val"]
        sample.save()
    try:
        report = mine_hard_negatives(dataset, run, count=HARD, progress=False)
        assert report["pool"] == EASY
        assert not dataset.match_tags(TAG_HARD_NEGATIVE).match_tags("val")
        with pytest.raises(CurateError, match="not a split.*fix"):
            mine_hard_negatives(dataset, run, count=1, split="trian")
    finally:
        undo_mining(dataset)
        for sample in hard:
            sample.tags = original[sample.id]
            sample.save()
