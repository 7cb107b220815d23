"""`curate predict`: pre-annotations a person opens in LabelImg and `curate import` reads back unchanged;
existing annotations are never replaced without --overwrite; the FiftyOne field variant; ONNX = torch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest

from curate import schema
from curate.boxes import relative_xywh_to_edges
from curate.errors import CurateError
from curate.export import ExportSettings, export_run
from curate.export_runtime import NetworkInput, TorchDetector
from curate.ingest import import_path
from curate.predict import detect_image, predict_folder
from factories import box, make_labelimg_xml
from test_export import tiny_run, write_images

THRESHOLD = 0.1  # the tiny model is under-trained; low enough that most images get boxes
ROUND_TRIP_PX = 1.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def onnx_path(run_dir, tmp_path_factory) -> Path:
    """The tiny run exported below predict's threshold, so predict filters its output the same way."""
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_run(run_dir, out, ExportSettings(score_threshold=THRESHOLD / 2, timing_runs=2, warmup=1))
    return out


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "to-annotate"
    write_images(folder / "a", 4, seed=3)
    write_images(folder / "b", 3, seed=4)
    return folder


def _expected(run_dir: Path, folder: Path) -> dict[str, list]:
    """What the model finds, in each image's pixel edges, before any rounding: (label, box) per image."""
    detector = TorchDetector(run_dir, score_threshold=THRESHOLD, nms_iou=0.45, top_k=200)
    network_input = NetworkInput(detector.spec)
    found = {}
    for path in sorted(folder.rglob("*.jpg")):
        boxes = detect_image(detector, network_input, path, THRESHOLD)
        found[str(path.resolve())] = list(zip(boxes.labels, boxes.boxes.tolist()))
    return found


def _same_boxes(got: list, want: list, tolerance_px: float) -> bool:
    """One-to-one: every wanted (label, box) has its own got one with that label, corners within tolerance."""
    free = list(got)
    for label, corners in want:
        fits = [g for g in free if g[0] == label and np.abs(np.array(g[1]) - np.array(corners)).max() <= tolerance_px]
        if not fits:
            return False
        free.remove(fits[0])
    return not free


def test_labelimg_round_trip_through_curate_import(run_dir, images, dataset_name):
    summary = predict_folder(run_dir, images, score_threshold=THRESHOLD, progress=False)
    assert summary.images == 7 and summary.written and summary.boxes > 0
    assert len(summary.written) + len(summary.nothing_found) == 7
    expected = _expected(run_dir, images)
    import_path(images, dataset_name=dataset_name, fmt="labelimg", find_duplicates=False, progress=False)
    dataset = fo.load_dataset(dataset_name)
    for path, width, height, dets in zip(*dataset.values(["filepath", "metadata.width", "metadata.height",
                                                           f"{schema.GROUND_TRUTH}.detections"])):
        imported = [(d.label, relative_xywh_to_edges(d.bounding_box, width, height)) for d in dets or ()]
        assert _same_boxes(imported, expected[path], ROUND_TRIP_PX), (path, imported, expected[path])
    assert sum(len(v) for v in expected.values()) == summary.boxes


def test_existing_xml_is_kept_unless_overwrite(run_dir, images, curate_cmd, curate_env):
    image = sorted((images / "a").glob("*.jpg"))[0]
    mine = make_labelimg_xml(image.with_suffix(".xml"), image.name, (96, 96), [box("person-drawn", 1, 2, 30, 40)])
    before = mine.read_bytes()
    command = curate_cmd + ["predict", str(run_dir), str(images), "--score-threshold", str(THRESHOLD)]
    result = subprocess.run(command, capture_output=True, text=True, env={**curate_env, "COLUMNS": "1000"},
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 skipped, already annotated" in result.stdout and image.stem in result.stdout
    assert mine.read_bytes() == before
    existing = sorted(str(p) for p in images.rglob("*.xml"))
    again = predict_folder(run_dir, images, score_threshold=THRESHOLD, progress=False)
    assert sorted(again.skipped_existing) == existing and not again.written
    replaced = predict_folder(run_dir, images, score_threshold=THRESHOLD, overwrite=True, progress=False)
    if str(mine) in replaced.written:
        assert b"person-drawn" not in mine.read_bytes()
    else:  # the model found nothing there: the person's file stays
        assert str(image) in replaced.nothing_found and mine.read_bytes() == before


def test_exported_onnx_writes_the_same_annotations_as_torch(run_dir, onnx_path, tmp_path, images):
    torch_copy = tmp_path / "torch"
    subprocess.run(["cp", "-r", str(images), str(torch_copy)], check=True)
    predict_folder(run_dir, torch_copy, score_threshold=THRESHOLD, progress=False)
    predict_folder(onnx_path, images, score_threshold=THRESHOLD, progress=False)
    torch_xml = sorted(p.relative_to(torch_copy) for p in torch_copy.rglob("*.xml"))
    assert torch_xml and torch_xml == sorted(p.relative_to(images) for p in images.rglob("*.xml"))
    for relative in torch_xml:
        assert (torch_copy / relative).read_bytes() == (images / relative).read_bytes(), relative
    with pytest.raises(CurateError, match=r"exported with score threshold 0\.05.*fix: pass --score-threshold >= 0\.05"):
        predict_folder(onnx_path, images, score_threshold=0.01, overwrite=True, progress=False)


def test_onnx_model_refuses_nms_iou_and_top_k_it_was_not_exported_with(onnx_path, images, curate_cmd,
                                                                      curate_env):
    with pytest.raises(CurateError, match=r"m\.onnx: exported with --nms-iou 0\.45, which is in its graph, so "
                       r"--nms-iou 0\.6 cannot be honoured; fix: leave --nms-iou out .* --nms-iou 0\.6`"):
        predict_folder(onnx_path, images, score_threshold=THRESHOLD, nms_iou=0.6, progress=False)
    with pytest.raises(CurateError, match=r"exported with --top-k 200.*fix: .*re-export with `curate export RUN "
                       r"--onnx --top-k 10`"):
        predict_folder(onnx_path, images, score_threshold=THRESHOLD, top_k=10, progress=False)
    assert not list(images.rglob("*.xml"))
    same = predict_folder(onnx_path, images, score_threshold=THRESHOLD, nms_iou=0.45, top_k=200, progress=False)
    assert same.written
    result = subprocess.run(curate_cmd + ["predict", str(onnx_path), str(images), "--score-threshold", str(THRESHOLD),
                                          "--nms-iou", "0.3", "--overwrite", "--no-progress"],
                            capture_output=True, text=True, env={**curate_env, "COLUMNS": "1000"}, timeout=300)
    assert result.returncode == 1 and "--nms-iou 0.3 cannot be honoured" in result.stderr + result.stdout


@pytest.mark.parametrize("report", [{"check": {"ok": False}}, None], ids=["check failed", "check never finished"])
def test_predict_refuses_an_onnx_file_whose_check_did_not_pass(onnx_path, images, tmp_path, report):
    model = tmp_path / "model.onnx"
    shutil.copy(onnx_path, model)
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    if report is None:
        del sidecar["export_report"]
    else:
        sidecar["export_report"] = report
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CurateError, match=r"model\.onnx: its (check against torch failed|export stopped before the "
                       r"check against torch passed).*must not be used; fix: re-export"):
        predict_folder(model, images, score_threshold=THRESHOLD, progress=False)
    assert not list(images.rglob("*.xml"))


def test_images_sharing_a_stem_are_skipped_and_listed_never_merged(run_dir, tmp_path, curate_cmd, curate_env):
    folder = tmp_path / "photos"
    write_images(folder, 3, seed=5)
    detector = TorchDetector(run_dir, score_threshold=THRESHOLD, nms_iou=0.45, top_k=200)
    found = [p for p in sorted(folder.glob("*.jpg"))
             if detect_image(detector, NetworkInput(detector.spec), p, THRESHOLD).labels]
    assert found, "the tiny model should find something in one of three images"
    first = next(p for p in sorted(folder.glob("*.jpg")) if p != found[0])
    twin = first.with_suffix(".png")  # a.jpg and a.png: other pixels (with boxes), the one a.xml LabelImg reads
    from PIL import Image

    from curate.predict import stem_collisions

    Image.open(found[0]).save(twin)
    assert stem_collisions(sorted(folder.iterdir())) == [str(first), str(twin)]
    summary = predict_folder(run_dir, folder, score_threshold=THRESHOLD, progress=False)
    assert summary.stem_collisions == [str(first), str(twin)] and summary.images == 4
    assert not first.with_suffix(".xml").exists()
    assert str(found[0].with_suffix(".xml")) in summary.written  # the other images as usual
    assert len(summary.written) + len(summary.nothing_found) == 2
    mine = make_labelimg_xml(first.with_suffix(".xml"), first.name, (96, 96), [box("person-drawn", 1, 2, 30, 40)])
    before = mine.read_bytes()
    result = subprocess.run(curate_cmd + ["predict", str(run_dir), str(folder), "--score-threshold", str(THRESHOLD),
                                          "--overwrite", "--no-progress"],
                            capture_output=True, text=True, env={**curate_env, "COLUMNS": "1000"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 skipped, same name as another image in its folder" in result.stdout
    assert first.name in result.stdout and twin.name in result.stdout and "rename" in result.stdout
    assert mine.read_bytes() == before  # neither image's boxes went into the other's (or the person's) XML


def test_field_format_writes_detections_matched_by_filepath(run_dir, images, tmp_path, dataset_name):
    make_labelimg_xml(images / "a" / "img_3_0.xml", "img_3_0.jpg", (96, 96), [box("person-drawn", 1, 2, 30, 40)])
    import_path(images, dataset_name=dataset_name, fmt="labelimg", find_duplicates=False, progress=False)
    stranger = write_images(tmp_path / "elsewhere", 1, seed=9)[0]["filepath"]
    subprocess.run(["cp", stranger, str(images / "b" / "stranger.jpg")], check=True)
    summary = predict_folder(run_dir, images, fmt="field", dataset=dataset_name, field_name="pre",
                             score_threshold=THRESHOLD, progress=False)
    assert summary.unmatched == [str(images / "b" / "stranger.jpg")] and len(summary.written) == 7
    dataset = fo.load_dataset(dataset_name)
    expected = _expected(run_dir, images)
    for path, width, height, pre in zip(*dataset.values(["filepath", "metadata.width", "metadata.height", "pre"])):
        got = [(d.label, relative_xywh_to_edges(d.bounding_box, width, height)) for d in pre.detections]
        assert _same_boxes(got, expected[path], 1e-3), (path, got, expected[path])
        assert all(0 < d.confidence <= 1 for d in pre.detections)
    assert dataset.count(f"{schema.GROUND_TRUTH}.detections") == 1  # annotations untouched
    again = predict_folder(run_dir, images, fmt="field", dataset=dataset_name, field_name="pre",
                           score_threshold=THRESHOLD, progress=False)
    assert len(again.skipped_existing) == 7 and not again.written
    with pytest.raises(CurateError, match=r"--field ground_truth: that is the annotations' field; fix"):
        predict_folder(run_dir, images, fmt="field", dataset=dataset_name, field_name=schema.GROUND_TRUTH)
    with pytest.raises(CurateError, match=r"--dataset no-such-dataset: no such dataset; fix"):
        predict_folder(run_dir, images, fmt="field", dataset="no-such-dataset")
