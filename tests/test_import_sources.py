"""`curate import logos/`: several datasets in subfolders become one dataset with one source each,
and duplicate images are grouped within and across sources (nothing deleted)."""

from __future__ import annotations

import shutil

import fiftyone as fo
from factories import box, make_labelimg_xml
from PIL import Image

from curate import schema
from curate.formats import plan_sources
from curate.ingest import import_path
from curate.synth import render_image, write_labelimg_folder, write_voc_folder


def _labelimg_photo(folder, name, seed):
    image, _ = render_image(seed, 96, 72, max_boxes=2)
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / f"{name}.jpg", quality=90)
    make_labelimg_xml(folder / f"{name}.xml", f"{name}.jpg", (96, 72), [box("acme", 1, 1, 20, 20)])


def _three_sources(root):
    write_labelimg_folder(root / "shop_a", 4, seed=1, width=96, height=72)
    write_voc_folder(root / "voc_b", 5, seed=2, width=96, height=72)
    _labelimg_photo(root / "shop_c", "own", seed=99)
    return root


def test_a_folder_of_datasets_is_planned_as_one_source_each(tmp_path):
    plans = plan_sources(_three_sources(tmp_path / "logos"))
    assert [(p.source, p.format) for p in plans] == [("shop_a", "labelimg"), ("shop_c", "labelimg"),
                                                     ("voc_b", "voc")]


def test_annotations_and_images_siblings_stay_one_source(tmp_path):
    _labelimg_photo(tmp_path / "set" / "annotations", "x", seed=3)
    shutil.move(tmp_path / "set" / "annotations" / "x.jpg", tmp_path / "set" / "x.jpg")
    (tmp_path / "set" / "images").mkdir()
    shutil.move(tmp_path / "set" / "x.jpg", tmp_path / "set" / "images" / "x.jpg")
    (plan,) = plan_sources(tmp_path / "set")
    assert (plan.path, plan.format) == (tmp_path / "set", "labelimg")


def test_three_sources_one_dataset_with_cross_source_duplicates(tmp_path, dataset_name):
    root = _three_sources(tmp_path / "logos")
    shutil.copy(root / "shop_a" / "img_00000.jpg", root / "shop_c" / "copy_of_a0.jpg")
    with Image.open(root / "voc_b" / "JPEGImages" / "000001.jpg") as image:
        image.resize((80, 60)).save(root / "shop_c" / "smaller_b1.jpg", quality=70)
    summary = import_path(root, dataset_name=dataset_name, progress=False)
    dataset = fo.load_dataset(dataset_name)
    assert set(dataset.distinct(schema.SOURCE)) == {"shop_a", "voc_b", "shop_c"}
    assert len(dataset) == 4 + 5 + 3 and len(summary.reports) == 3
    d = summary.duplicates
    assert (d["exact_groups"], d["samples_in_exact_groups"], d["cross_source_exact_groups"]) == (1, 2, 1)
    assert d["cross_source_near_groups"] >= 2
    copy = dataset.match(fo.ViewField("filepath").ends_with("copy_of_a0.jpg")).first()
    group = dataset.match(fo.ViewField(schema.EXACT_DUPLICATE_GROUP) == copy[schema.EXACT_DUPLICATE_GROUP])
    assert sorted(group.values(schema.SOURCE)) == ["shop_a", "shop_c"]
    smaller = dataset.match(fo.ViewField("filepath").ends_with("smaller_b1.jpg")).first()
    near = dataset.match(fo.ViewField(schema.NEAR_DUPLICATE_GROUP) == smaller[schema.NEAR_DUPLICATE_GROUP])
    assert sorted(near.values(schema.SOURCE)) == ["shop_c", "voc_b"]
    assert dataset.info[schema.INFO_DUPLICATES] == d


def test_reimport_hashes_only_what_changed(tmp_path, dataset_name):
    root = _three_sources(tmp_path / "logos")
    import_path(root, dataset_name=dataset_name, progress=False)
    assert import_path(root, dataset_name=dataset_name, progress=False).duplicates["hashed_now"] == 0
    image, _ = render_image(1234, 96, 72, max_boxes=1)
    image.save(root / "shop_c" / "own.jpg", quality=90)
    assert import_path(root, dataset_name=dataset_name, progress=False).duplicates["hashed_now"] == 1
