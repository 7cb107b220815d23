"""`curate review`: the App answers on 127.0.0.1, on every failure view, and its server never outlives us."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.request

import pytest
from review_fixtures import (app_server_processes, database_env, evaluated,  # noqa: F401  (fixture)
                             start_review)

from curate.app_server import port_in_use
from curate.errors import CurateError
from curate.review import choose_view, failure_views, open_review, view_url

GONE_WITHIN_S = 20  # graceful stop is ~1 s; the orphan check allows for a loaded machine


@pytest.fixture
def review_env(curate_env):
    return database_env(curate_env)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def _wait_until_gone(parent: int, port: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline:
        if not app_server_processes(parent) and not port_in_use("127.0.0.1", port):
            return
        time.sleep(0.2)
    left = [(p.pid, p.info["cmdline"]) for p in app_server_processes(parent)]
    for process in app_server_processes(parent):
        process.kill()  # do not leave the failure's orphan holding a port on a shared machine
    raise AssertionError(f"after {GONE_WITHIN_S} s: server processes {left}, port {port} in use: "
                         f"{port_in_use('127.0.0.1', port)}")


def test_every_failure_view_is_listed_and_sigterm_stops_the_server(evaluated, curate_cmd, review_env):  # noqa: F811
    import fiftyone as fo

    dataset = fo.load_dataset(evaluated.name)
    review = start_review(curate_cmd, review_env, evaluated.name)
    try:
        assert review.url == f"http://127.0.0.1:{review.port}/datasets/{evaluated.name}?view=eval-worst"
        listed = {m["name"]: m for m in (re.match(r"\s+(?P<name>\S+)\s+(?P<n>\d+) samples\s+(?P<url>\S+)", line)
                                         for line in review.lines) if m}
        expected = [n for n in dataset.list_saved_views() if n.startswith("eval-")]
        assert sorted(listed) == sorted(expected) and "eval-worst" in listed
        for name, match in listed.items():
            assert int(match["n"]) == len(dataset.load_saved_view(name)), name
            assert "<title>FiftyOne</title>" in _get(match["url"]), name
        [server] = app_server_processes(review.process.pid)
        assert os.getpgid(server.pid) == server.pid != os.getpgid(review.process.pid)  # its own group
        assert _get(f"http://127.0.0.1:{review.port}/fiftyone").find(fo.__version__) > 0
        review.process.send_signal(signal.SIGTERM)
        assert review.process.wait(30) == 0
    finally:
        review.process.kill()
    assert review.lines[-1] == "App stopped (SIGTERM)"
    _wait_until_gone(review.process.pid, review.port)


def test_ctrl_c_stops_the_server(evaluated, curate_cmd, review_env):  # noqa: F811
    review = start_review(curate_cmd, review_env, evaluated.name, "--view", "eval-missed")
    try:
        assert review.url.endswith("?view=eval-missed")
        assert "FiftyOne" in _get(review.url)
        os.killpg(review.process.pid, signal.SIGINT)  # what a terminal sends its foreground job
        assert review.process.wait(30) == 0
    finally:
        review.process.kill()
    assert review.lines[-1] == "App stopped (SIGINT)"
    _wait_until_gone(review.process.pid, review.port)


def test_kill_9_of_curate_leaves_no_server(evaluated, curate_cmd, review_env):  # noqa: F811
    review = start_review(curate_cmd, review_env, evaluated.name)
    [server] = app_server_processes(review.process.pid)
    review.process.kill()  # SIGKILL: no handler, no atexit in the parent
    review.process.wait(10)
    _wait_until_gone(review.process.pid, review.port)
    assert not server.is_running() or server.status() == "zombie"


def test_default_view_is_worst_and_unknown_view_is_named(evaluated):  # noqa: F811
    import fiftyone as fo

    dataset = fo.load_dataset(evaluated.name)
    views = failure_views(dataset, "eval")
    assert choose_view(dataset, views, "eval", None).name == "eval-worst"
    assert choose_view(dataset, views, "eval", "eval-missed").name == "eval-missed"
    with pytest.raises(CurateError, match=r"no saved view 'nope'; fix: pass --view with one of \["):
        with open_review(evaluated.name, view="nope", port=1):
            pass
    with pytest.raises(CurateError, match=r"no saved views named 'other-\.\.\.'.*curate evaluate"):
        with open_review(evaluated.name, eval_key="other", port=1):
            pass


def test_busy_port_is_refused(evaluated):  # noqa: F811
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CurateError, match=rf"127\.0\.0\.1:{port} is already in use.*fix: pass --port"):
            with open_review(evaluated.name, port=port):
                pass


def test_missing_dataset_is_a_clear_error():
    with pytest.raises(CurateError, match=r"no dataset named 'no-such-dataset-x'"):
        with open_review("no-such-dataset-x"):
            pass


def test_view_urls_quote_names():
    assert view_url("http://127.0.0.1:5151", "my data/1", "eval-worst") == \
        "http://127.0.0.1:5151/datasets/my%20data%2F1?view=eval-worst"
    assert view_url("http://h:1", "d") == "http://h:1/datasets/d"
