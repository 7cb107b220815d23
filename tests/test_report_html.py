"""`curate report RUN`: the HTML carries eval.json's numbers, pictures that decode, the right failures."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from PIL import Image
from review_fixtures import decode_data_uri, evaluated, parse_html  # noqa: F401  (fixture)

from curate.errors import CurateError
from curate.report_gallery import (FALSE_POSITIVE_COLOUR, GT_COLOUR, MAX_PER_IMAGE, MISSED_COLOUR, PANEL,
                                   PREDICTION_COLOUR, Box, Failure, _nearest, relative_iou, render_tile)
from curate.report_html import write_report

GALLERY = 4


@pytest.fixture(scope="module")
def report(evaluated, tmp_path_factory):  # noqa: F811
    out = write_report(evaluated.run_dir, tmp_path_factory.mktemp("report") / "r.html", gallery=GALLERY)
    return evaluated, json.loads((evaluated.run_dir / "eval.json").read_text()), parse_html(out.read_text())


def test_metric_tables_show_eval_json(report):
    _, data, dom = report
    voc = dom.column("voc", "value")
    assert voc["mAP (all-point)"] == f"{data['voc_map50_all_point']:.3f}"
    assert voc["mAP (11-point)"] == f"{data['voc_map50_11point']:.3f}"
    coco = dom.column("coco", "value")
    for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100"):
        value = data["coco"][key]
        assert coco[key] == (f"{value:.3f}" if value >= 0 else "\u2014"), key
    per_class = dom.column("per-class-ap", "AP (VOC all-point)")
    assert set(per_class) == set(data["classes"])
    for name, ap in data["voc_ap_per_class"].items():
        assert per_class[name] == (f"{ap:.3f}" if ap >= 0 else "\u2014"), name


def test_confusion_timing_and_size_tables(report):
    _, data, dom = report
    header, *rows = dom.tables["confusion-table"]
    assert header[1:] == data["confusion"]["labels"]
    assert [[int(v) for v in row[1:]] for row in rows] == data["confusion"]["matrix"]
    timing = dom.column("timing-table", "ms per image")
    ms = data["ms_per_image"]
    assert timing["network forward"] == f"{ms['forward']:.3f}"
    assert timing["total"] == f"{sum(ms.values()):.3f}"
    sizes = dom.column("size-bins-table", "recall")
    assert list(sizes) == data["size_bins"]["labels"]
    training = dom.column("training-table", "value")
    assert training["epochs"] == "8"


def test_every_picture_decodes(report):
    _, data, dom = report
    ids = {img.get("id") for img in dom.images}
    assert {"pr-curves", "size-bins", "confusion-heatmap", "training-curves"} <= ids
    for img in dom.images:
        picture = decode_data_uri(img["src"])
        assert picture.width > 100 and picture.height > 100, img.get("id")
    tiles = [decode_data_uri(img["src"]) for img in dom.images if not img.get("id")]
    assert tiles and all(t.size == (2 * PANEL, PANEL) for t in tiles)


def test_gallery_shows_the_most_confident_false_positives(report):
    from fiftyone import ViewField as F

    import fiftyone as fo

    evaluated, data, dom = report
    val = fo.load_dataset(evaluated.name).match_tags(data["split"])
    fps = val.filter_labels("predictions", F("eval") == "fp")
    expected = sorted(fps.values("predictions.detections.confidence", unwind=True), reverse=True)
    shown = [row for row in dom.text if row.startswith("false positive: ")]
    scores = [float(text.rsplit("score ", 1)[1]) for text in shown]
    assert len(shown) == min(GALLERY, len(expected)) and scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(expected[0], abs=5e-4)  # the most confident one is first
    files = [t for t in dom.text if t.endswith(".jpg")]
    assert max(files.count(f) for f in set(files)) <= 2 * MAX_PER_IMAGE  # fp + fn galleries
    missed = [row for row in dom.text if row.startswith("missed: ")]
    assert len(missed) == min(GALLERY, sum(val.values("eval_fn")))


def test_tile_draws_each_box_in_its_colour(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (200, 100), (128, 128, 128)).save(path)
    failure = Failure("fp", str(path), Box("acme", (0.5, 0.2, 0.2, 0.4), 0.91),
                      ground_truth=[Box("bolt", (0.05, 0.1, 0.2, 0.5))],
                      predictions=[Box("bolt", (0.05, 0.5, 0.2, 0.3), 0.8)])
    import io

    tile = Image.open(io.BytesIO(render_tile(failure))).convert("RGB")
    assert tile.size == (2 * PANEL, PANEL)
    whole = tile.crop((0, 0, PANEL, PANEL))
    # the image is 200x100 fitted in a 240 square: x scale 1.2, letterbox of 60 px above
    assert _near(whole.getpixel((round(0.5 * 240) + 1, 60 + round(0.6 * 120))), FALSE_POSITIVE_COLOUR)
    assert _near(whole.getpixel((round(0.05 * 240), 60 + round(0.35 * 120))), GT_COLOUR)
    assert _near(whole.getpixel((round(0.25 * 240), 60 + round(0.8 * 120))), PREDICTION_COLOUR)
    zoom = tile.crop((PANEL, 0, 2 * PANEL, PANEL))
    assert sum(_near(zoom.getpixel((x, y)), FALSE_POSITIVE_COLOUR) for x in range(PANEL) for y in (120,)) >= 2
    missed = render_tile(Failure("fn", str(path), Box("acme", (0.5, 0.2, 0.2, 0.4))))
    missed_tile = Image.open(io.BytesIO(missed)).convert("RGB")
    assert _near(missed_tile.getpixel((round(0.5 * 240) + 1, 60 + round(0.6 * 120))), MISSED_COLOUR)


def test_nearest_prediction_to_a_miss():
    assert relative_iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.5, 0.5)) == pytest.approx(0.0625 / 0.4375)
    assert relative_iou((0, 0, 0.2, 0.2), (0.5, 0.5, 0.1, 0.1)) == 0.0
    missed = Box("delta", (0.1, 0.1, 0.2, 0.2))
    far, near = Box("acme", (0.7, 0.7, 0.1, 0.1), 0.9), Box("cobalt", (0.12, 0.1, 0.2, 0.2), 0.6)
    found = _nearest(missed, [far, near])
    assert found.label == "cobalt" and found.iou == pytest.approx(0.18 * 0.2 / (0.08 - 0.036))
    assert _nearest(missed, [far]) is None


def _near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_strings_from_data_are_escaped(report, tmp_path):
    evaluated, data, _ = report
    hostile = "<script>alert(1)</script>"
    data = {**data, "dataset": 'x"><img src=x onerror=alert(2)>', "classes": [hostile, *data["classes"][1:]],
            "voc_ap_per_class": {hostile: 0.5}, "note": "<b>bold</b> & more"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.json").write_text(json.dumps(data))
    text = write_report(run, gallery=0).read_text()
    assert "<script>" not in text and "onerror=alert(2)>" not in text and "<b>bold" not in text
    dom = parse_html(text)
    assert dom.tags.count("script") == 0 and hostile in dom.column("per-class-ap", "AP (VOC all-point)")
    assert dom.column("other-table", "value")["note"] == "<b>bold</b> & more"


def test_history_from_csv_when_jsonl_is_missing(report, tmp_path):
    evaluated, _, _ = report
    run = tmp_path / "run"
    run.mkdir()
    for name in ("eval.json", "metrics.csv"):
        shutil.copy(evaluated.run_dir / name, run / name)
    dom = parse_html(write_report(run, gallery=0).read_text())
    assert dom.column("training-table", "value")["epochs"] == "8"
    assert any(img.get("id") == "training-curves" for img in dom.images)


def test_missing_eval_json_names_the_fix(tmp_path):
    with pytest.raises(CurateError, match=r"eval\.json: not found.*fix: run `curate evaluate DATASET --model"):
        write_report(tmp_path)


def test_missing_field_is_named(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"dataset": "d", "classes": []}))
    with pytest.raises(CurateError, match=r"eval\.json: field 'voc_map50_all_point' missing"):
        write_report(tmp_path)


def test_cli_writes_the_report_and_fails_cleanly(report, tmp_path, curate_cmd, curate_env):
    evaluated, _, _ = report
    out = tmp_path / "cli.html"
    done = subprocess.run([*curate_cmd, "report", str(evaluated.run_dir), "--out", str(out), "--gallery", "2"],
                          env=curate_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and str(out) in done.stdout.replace("\n", "")
    assert sum(1 for img in parse_html(out.read_text()).images if not img.get("id")) <= 4
    failed = subprocess.run([*curate_cmd, "report", str(tmp_path)], env=curate_env, capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode == 1 and "curate evaluate" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
