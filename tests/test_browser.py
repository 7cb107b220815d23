"""A real browser: headless Chromium renders the HTML report and the FiftyOne App that `curate review` serves.

Chromium is installed (Debian package) when missing and we are root; otherwise these tests skip.
"""

from __future__ import annotations

import io
import json
import signal

import numpy as np
import pytest
from browser import Chromium, ensure_chromium
from PIL import Image
from review_fixtures import database_env, decode_data_uri, evaluated, start_review  # noqa: F401  (fixture)

from curate.report_gallery import FALSE_POSITIVE_COLOUR
from curate.report_html import write_report

APP_RENDER_TIMEOUT_S = 90  # the App's bundle is ~20 MB of JavaScript, parsed on a shared 2-core machine
BLANK_STD = 8.0  # a screenshot (or a part) with less pixel spread than this shows nothing


@pytest.fixture(scope="session")
def chromium():
    return ensure_chromium()


@pytest.fixture
def browser(chromium, tmp_path):
    with Chromium(chromium, tmp_path / "profile") as opened:
        yield opened


def _screenshot(browser, **kwargs) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.screenshot(**kwargs))).convert("RGB")).astype(int)


def _rect(browser, selector: str, index: int = 0) -> dict:
    """Page coordinates (CSS px, device scale 1) of the index-th element matching ``selector``."""
    return browser.evaluate(f"""(() => {{ const r = document.querySelectorAll({json.dumps(selector)})[{index}]
        .getBoundingClientRect(); return {{x: Math.round(r.left + scrollX), y: Math.round(r.top + scrollY),
        w: Math.round(r.width), h: Math.round(r.height)}}; }})()""")


def test_report_renders_with_its_numbers_and_pictures(evaluated, browser, tmp_path):  # noqa: F811
    report = json.loads((evaluated.run_dir / "eval.json").read_text())
    page = write_report(evaluated.run_dir, tmp_path / "report.html", gallery=4)
    browser.open(page.resolve().as_uri())

    def cells(table_id: str) -> dict:
        return dict(browser.evaluate(f"""[...document.querySelectorAll('#{table_id} tbody tr')]
            .map(tr => [tr.cells[0].innerText, tr.cells[1].innerText])"""))

    assert cells("voc")["mAP (all-point)"] == f"{report['voc_map50_all_point']:.3f}"
    assert cells("coco")["AP50"] == f"{report['coco']['AP50']:.3f}"
    assert cells("per-class-ap").keys() == set(report["classes"])
    images = browser.evaluate("[...document.images].map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 5 and all(done and w > 0 and h > 0 for _, done, w, h in images), images

    shot = _screenshot(browser, full_page=True)
    assert shot.std() > BLANK_STD
    tile = _rect(browser, "#gallery-fp img")
    shown = shot[tile["y"]:tile["y"] + tile["h"], tile["x"]:tile["x"] + tile["w"]]
    src = browser.evaluate("document.querySelector('#gallery-fp img').src")
    original = np.asarray(decode_data_uri(src).convert("RGB")).astype(int)
    assert shown.shape == original.shape and np.abs(shown - original).mean() < 6  # the tile as drawn
    red = np.all(np.abs(shown - np.array(FALSE_POSITIVE_COLOUR)) < 40, axis=-1).sum()
    assert red > 50, "the false positive's red box is not on screen"


def test_app_shows_the_failure_views(evaluated, browser, curate_cmd, curate_env):  # noqa: F811
    import fiftyone as fo

    dataset = fo.load_dataset(evaluated.name)
    review = start_review(curate_cmd, database_env(curate_env), evaluated.name)
    try:
        for name in ("eval-worst", "eval-missed"):
            expected = len(dataset.load_saved_view(name))
            url = review.url.replace("view=eval-worst", f"view={name}")
            browser.open(url, timeout=APP_RENDER_TIMEOUT_S)
            # one looker (sample tile) per sample of the view, each with its canvas drawn
            loaded = ("document.querySelectorAll('[data-cy=looker] canvas[canvas-loaded=true]').length === "
                      f"{expected}")
            browser.wait_for(loaded, timeout=APP_RENDER_TIMEOUT_S)
            text = browser.evaluate("document.body.innerText")
            assert name in text, f"the view selector does not show {name}"
            assert evaluated.name in browser.evaluate("document.documentElement.outerHTML")
            # the sidebar has a group for the evaluation's fields (eval_tp / eval_fp / eval_fn)
            assert browser.evaluate("!!document.querySelector('[data-cy=sidebar-group-EVAL]')")
            shot = _screenshot(browser)
            box = _rect(browser, "[data-cy=looker] canvas")
            first = shot[box["y"]:box["y"] + box["h"], box["x"]:box["x"] + box["w"]]
            assert first.size and first.std() > BLANK_STD, "the first sample tile is blank"
        review.process.send_signal(signal.SIGTERM)
        assert review.process.wait(30) == 0
    finally:
        review.process.kill()
