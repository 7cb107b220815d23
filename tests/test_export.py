"""`curate export --onnx`: a tiny trained SSD exported with its post-processing gives torch's detections in
ONNX Runtime; int8 models are written and compared; disagreement and bad input fail loudly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import shared_dataset
from curate.cli.export_cmd import summary_lines
from curate.errors import CurateError
from curate.export import ExportCheckFailed, ExportSettings, _check, export_run
from curate.export_check import compare, detect_all, images_from_folder, images_from_manifest, prepare_inputs
from curate.export_runtime import (Detections, InputSpec, NetworkInput, OnnxDetector, TorchDetector,
                                   open_detector, to_image_pixels)
from curate.recipe import Recipe, recipe_from_dict, recipe_to_dict
from curate.synth import render_image
from factories import make_labelimg_xml
from trainer.export_graph import DeployableSSD

LOW_THRESHOLD = 0.05  # an under-trained tiny model: many boxes, so NMS and top-k have work to do
IMAGE_SIDE = 96


def write_images(folder: Path, n: int, *, seed: int = 0, labelimg: bool = False) -> list[dict]:
    """Synthetic images (and, with ``labelimg``, their LabelImg XML beside them); manifest records."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        image, boxes = render_image(seed * 1000 + i, IMAGE_SIDE, IMAGE_SIDE, max_boxes=2)
        path = folder / f"img_{seed}_{i}.jpg"
        image.save(path, quality=95)
        if labelimg:
            make_labelimg_xml(path.with_suffix(".xml"), path.name, (IMAGE_SIDE, IMAGE_SIDE), boxes)
        records.append({"id": str(i), "filepath": str(path), "width": IMAGE_SIDE, "height": IMAGE_SIDE,
                        "boxes": [list(b.box) for b in boxes], "labels": [b.label for b in boxes]})
    return records


def tiny_run(tmp_path_factory) -> Path:
    """A run folder as `curate train` leaves it (best/last.pt, manifest.jsonl), built once per session."""
    from trainer.run import run_training

    run = tmp_path_factory.getbasetemp() / "tiny-ssd-run"
    if (run / "last.pt").is_file():
        return run
    images = write_images(tmp_path_factory.getbasetemp() / "tiny-ssd-images", 16)
    records = [{**r, "split": split, "weight": 1.0} for r in images for split in ("train", "val")]
    run.mkdir(parents=True)
    classes = sorted({label for r in records for label in r["labels"]})
    with (run / "manifest.jsonl").open("w") as handle:
        handle.write(json.dumps({"manifest_version": 1, "classes": classes}) + "\n")
        handle.writelines(json.dumps(r) + "\n" for r in records)
    data = recipe_to_dict(Recipe())
    data["model"].update(backbone="tiny", image_size=[64, 64])
    data["augment"]["preset"] = "none"
    data["train"].update(epochs=6, batch_size=8, workers=0, lr=0.05, val_every=100)
    run_training(recipe_from_dict(data), run / "manifest.jsonl", run, progress=False)
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    report = export_run(run_dir, out, ExportSettings(score_threshold=LOW_THRESHOLD, timing_runs=3, warmup=1))
    return out, report


def test_onnx_gives_torchs_detections_with_postprocessing_in_the_graph(exported):
    out, report = exported
    check = report["check"]
    assert check["ok"] and check["images"] == 16 and check["detections"] > 16, check
    assert check["max_box_diff"] <= 1e-4 and check["max_score_diff"] <= 1e-4
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"NonMaxSuppression", "TopK", "Softmax"} <= ops
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["input"]["shape"] == [1, 64, 64, 3] and sidecar["input"]["dtype"] == "uint8"
    assert sidecar["postprocess"]["score_threshold"] == LOW_THRESHOLD and sidecar["classes"]
    assert sidecar["export_report"]["ms_per_image"]["onnx_runtime"] > 0
    assert report["voc_map50"]["onnx"] == pytest.approx(report["voc_map50"]["torch"], abs=1e-9)


def test_onnx_outputs_are_relative_sorted_and_capped(exported):
    out, _ = exported
    detector = OnnxDetector(out)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    found = detector.detect(pixels)
    assert found.boxes.shape[1] == 4 and (found.boxes >= 0).all() and (found.boxes <= 1).all()
    assert (np.diff(found.scores) <= 0).all() and (found.scores > LOW_THRESHOLD).all()
    assert len(found.scores) <= 200 and found.labels.dtype == np.int64
    assert set(found.labels.tolist()) <= set(range(len(detector.classes)))


@pytest.mark.parametrize("mode, expected", [("stretch", [20, 25, 100, 75]), ("letterbox", [20, 0, 100, 100])])
def test_boxes_map_back_to_the_original_pixels(mode, expected):
    # a 200 x 100 image into a 100 x 100 input; letterbox: scale 0.5, 25 px of padding above and below
    rel = np.array([[0.1, 0.25, 0.5, 0.75]])
    assert to_image_pixels(rel, (200, 100), InputSpec((100, 100), mode)).tolist() == [expected]


def test_graph_wrapper_in_eager_torch_equals_postprocess(run_dir):
    detector = TorchDetector(run_dir, score_threshold=LOW_THRESHOLD, nms_iou=0.45, top_k=200)
    wrapper = DeployableSSD(detector.model, score_threshold=LOW_THRESHOLD, nms_iou=0.45, top_k=200)
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        boxes, scores, labels = wrapper(torch.from_numpy(pixels)[None])
    reference = detector.detect(pixels)
    assert len(scores) == len(reference.scores) > 0 and (torch.diff(scores) <= 0).all()
    agreement = compare([reference], [Detections(boxes.numpy(), scores.numpy(), labels.numpy())], ["random"],
                        score_threshold=LOW_THRESHOLD, nms_iou=0.45, top_k=200)
    assert agreement.ok and agreement.max_box_diff < 1e-6, agreement.failures


def test_a_disagreeing_onnx_file_fails_the_compare(exported, run_dir):
    out, _ = exported
    stricter_torch = TorchDetector(run_dir, score_threshold=LOW_THRESHOLD * 4, nms_iou=0.45, top_k=200)
    images = images_from_manifest(run_dir, 4)
    inputs = prepare_inputs(images, NetworkInput(stricter_torch.spec))
    onnx_model = OnnxDetector(out)
    agreement = compare(detect_all(stricter_torch.detect, inputs), detect_all(onnx_model.detect, inputs),
                        [str(i.path) for i in images], score_threshold=LOW_THRESHOLD * 4, nms_iou=0.45, top_k=200)
    assert not agreement.ok and "onnx only" in agreement.failures[0] and agreement.ties == 0


def _sidecar(onnx_path: Path) -> dict:
    return json.loads(onnx_path.with_suffix(".json").read_text())


def test_a_failed_check_keeps_the_earlier_export_and_the_failing_file_apart(exported, run_dir, tmp_path,
                                                                            monkeypatch):
    good, _ = exported
    out = tmp_path / "tiny.onnx"
    shutil.copy(good, out)
    shutil.copy(good.with_suffix(".json"), out.with_suffix(".json"))
    before, sidecar_before = out.read_bytes(), out.with_suffix(".json").read_bytes()

    import trainer.export_graph

    real_export = trainer.export_graph.export_onnx

    def export_dropping_boxes(model, path, *, score_threshold, nms_iou, top_k):
        # a real ONNX file whose graph drops what torch keeps (scores between 0.05 and 0.2): the check must fail
        return real_export(model, path, score_threshold=score_threshold * 4, nms_iou=nms_iou, top_k=top_k)

    monkeypatch.setattr(trainer.export_graph, "export_onnx", export_dropping_boxes)
    with pytest.raises(ExportCheckFailed, match=r"tiny\.onnx: ONNX Runtime and torch disagree.* is left as it was; "
                       r"the model is kept as .*tiny\.failed\.onnx .*must not be deployed"):
        export_run(run_dir, out, ExportSettings(score_threshold=LOW_THRESHOLD, check_limit=4, timing_runs=1, warmup=0))
    assert out.read_bytes() == before and out.with_suffix(".json").read_bytes() == sidecar_before
    failed = tmp_path / "tiny.failed.onnx"
    assert failed.is_file() and _sidecar(failed)["export_report"]["check"]["ok"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.failed.json", "tiny.failed.onnx", "tiny.json",
                                                          "tiny.onnx"]  # no unchecked file left behind
    with pytest.raises(CurateError, match=r"tiny\.failed\.onnx: its check against torch failed.*"
                       r"fix: re-export with `curate export RUN --onnx`"):
        open_detector(failed, score_threshold=0.5, nms_iou=0.45, top_k=200)
    assert open_detector(out, score_threshold=0.5, nms_iou=0.45, top_k=200).classes


def test_an_export_stopped_during_its_check_leaves_no_model(run_dir, tmp_path, monkeypatch):
    import curate.export

    def interrupted(*args, **kwargs):
        raise RuntimeError("stopped during the check")

    monkeypatch.setattr(curate.export, "compare", interrupted)  # the comparison, not the export under test
    with pytest.raises(RuntimeError, match="stopped during the check"):
        export_run(run_dir, tmp_path / "model.onnx", ExportSettings(score_threshold=LOW_THRESHOLD, check_limit=2))
    assert not list(tmp_path.iterdir())


def test_onnx_detector_refuses_a_file_whose_check_never_finished(exported, tmp_path):
    good, _ = exported
    out = tmp_path / "model.onnx"
    shutil.copy(good, out)
    sidecar = _sidecar(good)
    del sidecar["export_report"]  # as an export killed during its check left it
    out.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CurateError, match=r"model\.onnx: its export stopped before the check against torch "
                       r"passed \(model\.json .*fix: re-export"):
        OnnxDetector(out)
    assert OnnxDetector(out, require_check=False).classes  # what `curate export` runs while it checks


def _dets(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.array(labels))


BOX_A, BOX_B = [0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]
BOX_A_SHIFTED = [0.12, 0.1, 0.32, 0.3]  # IoU with BOX_A 0.82
BOX_A_BESIDE = [0.2, 0.1, 0.4, 0.3]  # IoU with BOX_A 0.33
POST = {"score_threshold": 0.3, "nms_iou": 0.45, "top_k": 200}


def test_check_fails_when_onnx_boxes_are_wrong_at_equal_scores_and_labels():
    torch_side = _dets([BOX_A, BOX_B], [0.8, 0.6], [0, 1])
    onnx_side = _dets([[0.6, 0.0, 0.7, 0.2], [0.0, 0.7, 0.2, 0.95]], [0.8, 0.6], [0, 1])
    wrong = compare([torch_side], [onnx_side], ["wrong boxes"], **POST)
    assert not wrong.ok and wrong.ties == 0 and len(wrong.failures) == 4
    saturated = compare([_dets([BOX_A], [1.0], [0])], [_dets([BOX_B], [1.0], [0])], ["far apart"], **POST)
    assert not saturated.ok and saturated.ties == 0


def test_check_accepts_an_nms_tie_only_for_overlapping_boxes_of_one_label_and_score():
    other = ([BOX_B], [0.7], [1])
    torch_side = _dets([BOX_A, *other[0]], [1.0, *other[1]], [0, *other[2]])

    def onnx_keeps(box, score=1.0, label=0, **post):
        return compare([torch_side], [_dets([box, *other[0]], [score, *other[1]], [label, *other[2]])], ["nms"],
                       **{**POST, **post})

    tie = onnx_keeps(BOX_A_SHIFTED)
    assert tie.ok and tie.ties == 2 and tie.detections == 2
    assert not onnx_keeps(BOX_A_SHIFTED, label=1).ok  # another label: NMS never compared them
    assert not onnx_keeps(BOX_A_SHIFTED, score=0.9).ok  # not a tie
    assert not onnx_keeps(BOX_A_BESIDE).ok  # IoU 0.33: NMS at 0.45 keeps both, so both should be on both sides
    assert onnx_keeps(BOX_A_BESIDE, nms_iou=0.3).ok  # at 0.3 they do suppress each other


def test_check_accepts_a_top_k_tie_only_at_the_cut():
    kept = ([BOX_B], [0.9], [0])
    torch_side = _dets([*kept[0], BOX_A], [*kept[1], 0.5], [*kept[2], 0])
    onnx_side = _dets([*kept[0], [0.0, 0.6, 0.3, 1.0]], [*kept[1], 0.5], [*kept[2], 1])
    cut = compare([torch_side], [onnx_side], ["top-k"], **{**POST, "top_k": 2})
    assert cut.ok and cut.ties == 2
    assert not compare([torch_side], [onnx_side], ["below top-k"], **{**POST, "top_k": 3}).ok
    above_the_cut = compare([_dets([BOX_A, BOX_B], [0.9, 0.5], [0, 0])],
                            [_dets([[0.0, 0.6, 0.3, 1.0], BOX_B], [0.9, 0.5], [0, 0])], ["not lowest"],
                            **{**POST, "top_k": 2})
    assert not above_the_cut.ok and above_the_cut.ties == 0


def test_check_refuses_a_wrong_label_and_tolerates_the_threshold_edge():
    relabelled = compare([_dets([BOX_A], [0.8], [0])], [_dets([BOX_A], [0.8], [1])], ["label"], **POST)
    assert not relabelled.ok and len(relabelled.failures) == 2
    at_the_cut = compare([_dets([BOX_B, BOX_A], [0.9, 0.8], [0, 0])], [_dets([BOX_B, BOX_A], [0.9, 0.8], [0, 1])],
                         ["label at top-k"], **{**POST, "top_k": 2})
    assert not at_the_cut.ok and "another label" in at_the_cut.failures[0]
    at_threshold = compare([_dets([BOX_A], [0.30001], [0])], [_dets([], [], [])], ["edge"], **POST)
    assert at_threshold.ok and at_threshold.borderline == 1


def test_check_images_skip_appledouble_files_and_unreadable_xml(tmp_path):
    write_images(tmp_path, 3, seed=5, labelimg=True)
    (tmp_path / "._img_5_0.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    broken = tmp_path / "img_5_1.xml"
    broken.write_text("<annotation><object><name>cat</name>")
    images = images_from_folder(tmp_path, 10)
    assert [i.path.name for i in images] == ["img_5_0.jpg", "img_5_1.jpg", "img_5_2.jpg"]
    assert images[1].gt_boxes is None and str(broken) in images[1].note and "no ground truth" in images[1].note
    assert images[0].gt_boxes is not None and not images[0].note


def test_int8_models_on_a_labelimg_folder(run_dir, tmp_path):
    folder = tmp_path / "check"
    write_images(folder, 6, seed=7, labelimg=True)
    (folder / "._img_7_0.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble: not an image
    (folder / "img_7_5.xml").write_text("not xml")
    report = export_run(run_dir, tmp_path / "m.onnx", ExportSettings(
        score_threshold=LOW_THRESHOLD, quantize="int8", check_images=folder, timing_runs=3, warmup=1))
    assert report["check"]["ok"] and report["check_images"] == 6 and report["voc_map50"]["images"] == 5
    assert len(report["ground_truth_notes"]) == 1 and "img_7_5.xml: unreadable" in report["ground_truth_notes"][0]
    assert any("1 check image(s) without ground truth" in line for line in summary_lines(report))
    assert sorted(p.name for p in tmp_path.glob("m.*")) == ["m.int8-dynamic.json", "m.int8-dynamic.onnx",
                                                           "m.int8-static.json", "m.int8-static.onnx", "m.json",
                                                           "m.onnx"]
    assert _sidecar(tmp_path / "m.onnx")["export_report"]["check"]["ok"] is True
    for mode in ("dynamic", "static"):
        quantized = report["quantized"][mode]
        path = Path(quantized["onnx"])
        assert path.is_file() and path.with_suffix(".json").is_file()
        assert quantized["size_bytes"] < report["size_bytes"]["onnx"]
        assert 0 <= quantized["agreement_with_float"]["found_fraction"] <= 1
        assert quantized["voc_map50"] is not None
        assert OnnxDetector(path).detect(np.zeros((64, 64, 3), np.uint8)).boxes.shape[1] == 4
    assert any(line.startswith("int8 static") for line in summary_lines(report))


def test_bad_inputs_name_the_problem_and_the_fix(run_dir, tmp_path, curate_cmd, curate_env):
    with pytest.raises(CurateError, match=r"no best\.pt or last\.pt; fix"):
        export_run(tmp_path, tmp_path / "x.onnx")
    with pytest.raises(CurateError, match=r"--top-k: invalid value; fix"):
        export_run(run_dir, tmp_path / "x.onnx", ExportSettings(top_k=0))
    with pytest.raises(CurateError, match=r"--out: invalid value; fix: pass a file name ending in \.onnx"):
        export_run(run_dir, tmp_path / "x.tflite")
    with pytest.raises(CurateError, match=r"no images found; fix"):
        images_from_folder(tmp_path, 5)
    result = subprocess.run(curate_cmd + ["export", str(run_dir)], capture_output=True, text=True, env=curate_env)
    assert result.returncode == 1 and "fix: pass --onnx" in result.stderr + result.stdout


@pytest.mark.realdata
def test_check_passes_on_real_photos_of_other_sizes(exported, run_dir):
    photos = shared_dataset("raccoon") / "images"
    out, _ = exported
    torch_model = TorchDetector(run_dir, score_threshold=LOW_THRESHOLD, nms_iou=0.45, top_k=200)
    images = images_from_folder(photos, 8)
    inputs = prepare_inputs(images, NetworkInput(torch_model.spec))
    assert len({size for _, size in inputs}) > 1  # real photos, several sizes, all resized the same way
    report, _ = _check(torch_model, OnnxDetector(out), images, inputs,
                       ExportSettings(score_threshold=LOW_THRESHOLD, timing_runs=2, warmup=1), out)
    assert report["check"]["ok"] and report["check"]["detections"] > 0
