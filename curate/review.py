"""``curate review DATASET``: the FiftyOne App, served on 127.0.0.1, opened on the saved failure views.

Reads: the dataset's saved views named ``<eval_key>-...`` (written by ``curate evaluate``: worst,
missed, high-confidence false positives, poor localisation, class confusions, ...). Writes nothing.

Each view gets its own URL, ``/datasets/<name>?view=<slug>``: the App loads a saved view from the
``view`` query parameter, so every failure view can be opened (and bookmarked, and reached through an
SSH tunnel) directly, with no Python session holding the App's state. The server is a child process
this module owns (curate/app_server.py), stopped on Ctrl-C, SIGTERM, SIGHUP, at exit, and when this
process dies.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from curate.app_server import AppServer
from curate.errors import CurateError

log = logging.getLogger(__name__)

DEFAULT_VIEW_SUFFIX = "worst"  # the view opened unless --view says otherwise
ALIVE_POLL_S = 1.0


@dataclass(frozen=True)
class SavedView:
    name: str
    slug: str
    samples: int


@dataclass
class Review:
    dataset: str
    views: list[SavedView]
    opened: SavedView
    server: AppServer

    def url(self, view: SavedView | None = None) -> str:
        return view_url(self.server.base_url, self.dataset, view.slug if view else None)


def view_url(base_url: str, dataset: str, slug: str | None = None) -> str:
    url = f"{base_url}/datasets/{urllib.parse.quote(dataset, safe='')}"
    return f"{url}?view={urllib.parse.quote(slug, safe='')}" if slug else url



def failure_views(dataset, eval_key: str) -> list[SavedView]:
    """Saved views whose name starts with ``<eval_key>-``, then what clean and mining left for review
    (``clean-*``, ``hard-negatives``), with their sample counts, in saved order."""
    import fiftyone.core.utils as fou

    from curate.evaluate_views import CLEAN_VIEW_PREFIX
    from curate.negatives import VIEW as HARD_NEGATIVES

    saved = dataset.list_saved_views()
    names = [n for n in saved if n.startswith(f"{eval_key}-")]
    names += [n for n in saved if n.startswith((CLEAN_VIEW_PREFIX, HARD_NEGATIVES)) and n not in names]
    return [SavedView(n, fou.to_slug(n), len(dataset.load_saved_view(n))) for n in names]


def choose_view(dataset, views: list[SavedView], eval_key: str, requested: str | None) -> SavedView:
    """--view if given (any saved view), else ``<key>-worst``, else the first failure view."""
    import fiftyone.core.utils as fou

    if requested:
        for view in views:
            if requested in (view.name, view.slug):
                return view
        if requested in dataset.list_saved_views():
            return SavedView(requested, fou.to_slug(requested), len(dataset.load_saved_view(requested)))
        raise CurateError(f"{dataset.name}: no saved view {requested!r}; fix: pass --view with one of "
                          f"{dataset.list_saved_views()}")
    views = [v for v in views if v.name.startswith(f"{eval_key}-")] or views
    if not any(v.name.startswith(f"{eval_key}-") for v in views):
        raise CurateError(f"{dataset.name}: no saved views named '{eval_key}-...'; fix: run `curate evaluate "
                          f"{dataset.name} --model RUN` (or pass --eval-key with the key it used)")
    preferred = [v for v in views if v.name == f"{eval_key}-{DEFAULT_VIEW_SUFFIX}"]
    return (preferred or views)[0]


@contextmanager
def open_review(dataset_name: str, *, eval_key: str = "eval", port: int = 5151, view: str | None = None,
                address: str = "127.0.0.1"):
    """Start the App server on the dataset's failure views; yield a :class:`Review`; stop the server on
    leaving, on SIGTERM / SIGHUP (turned into :class:`Stopped`) and at interpreter exit."""
    import fiftyone as fo

    if not fo.dataset_exists(dataset_name):
        raise CurateError(f"no dataset named {dataset_name!r}; fix: `curate import FOLDER --name {dataset_name}`")
    dataset = fo.load_dataset(dataset_name)
    views = failure_views(dataset, eval_key)
    opened = choose_view(dataset, views, eval_key, view)
    server = AppServer(port=port, address=address)
    atexit.register(server.stop)  # an exception or sys.exit anywhere below still stops the child
    previous = _stop_on_signals()
    try:
        server.start()
        yield Review(dataset_name, views, opened, server)
    finally:
        server.stop()
        _restore(previous)
        atexit.unregister(server.stop)


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: leave the review the way Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signals() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        raise Stopped(signum)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def serve_until_stopped(dataset_name: str, on_ready: Callable[[Review], None], **options) -> str:
    """:func:`open_review`, call ``on_ready`` (print the URLs, open a browser), then block until Ctrl-C,
    SIGTERM / SIGHUP or the server dying; return which. A signal that lands at any moment, even during
    start-up, stops the server the same way."""
    try:
        with open_review(dataset_name, **options) as review:
            on_ready(review)
            while review.server.alive():
                time.sleep(ALIVE_POLL_S)
            return f"server exited with code {review.server.process.returncode}: {review.server.log_tail()}"
    except KeyboardInterrupt:
        return "SIGINT"
    except Stopped as stop:
        return str(stop)
