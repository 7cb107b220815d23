"""The FiftyOne App server as a child process that ``curate review`` owns, and that never outlives it.

Why not ``fo.launch_app``: FiftyOne starts its server through ``fiftyone/service/main.py``, a
middleman in its own process group that ignores SIGINT and learns of its parent's death only when its
stdin pipe closes; the server (``fiftyone/server/main.py``, hypercorn) is its child. If the middleman
itself is killed, the server is orphaned and keeps the port; and if a server already answers on the
port, FiftyOne silently attaches to it. Here the parent starts exactly one process,
``python -m curate.app_server``, which serves FiftyOne's ASGI app with hypercorn in-process, and:

* runs in its own session and process group, so a terminal's Ctrl-C reaches only ``curate review``,
  which then stops the whole group in order (SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``);
* asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, as a second
  line, polls ``getppid()``: a ``kill -9`` of ``curate review`` still ends the server;
* on SIGTERM / SIGINT / parent death shuts hypercorn down gracefully, and exits hard after
  ``HARD_EXIT_S`` if that hangs, since nobody may be left to send SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from curate.errors import CurateError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0  # importing fiftyone and connecting to MongoDB on a busy 2-core machine
STOP_TIMEOUT_S = 10.0  # graceful shutdown, then SIGKILL to the group
HARD_EXIT_S = 8.0  # the child's own deadline once shutdown began
PARENT_POLL_S = 0.5
GRACEFUL_TIMEOUT_S = 2.0  # hypercorn: how long open App connections (event streams) may linger
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class AppServer:
    """``with AppServer(port=5151) as server:`` starts the child, waits until the App answers, stops it."""

    def __init__(self, *, port: int, address: str = "127.0.0.1") -> None:
        self.port, self.address = port, address
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if port_in_use(self.address, self.port):
            raise CurateError(f"{self.address}:{self.port} is already in use (another FiftyOne App?); "
                              "fix: pass --port with a free port, or stop the other server")
        handle, name = tempfile.mkstemp(prefix=f"curate-app-{self.port}-", suffix=".log")
        self.log_path = Path(name)
        command = [sys.executable, "-m", "curate.app_server", "--port", str(self.port),
                   "--address", self.address, "--parent", str(os.getpid())]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,
                                        start_new_session=True, env=_child_env())
        os.close(handle)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CurateError(f"the FiftyOne App server exited with code {self.process.returncode}: "
                                  f"{self.log_tail()}; fix: see {self.log_path}")
            if app_version(self.base_url):
                return
            time.sleep(0.25)
        self.stop()
        raise CurateError(f"the FiftyOne App did not answer on {self.base_url} within {READY_TIMEOUT_S:.0f} s; "
                          f"fix: see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """Stop the server's process group (idempotent); its exit code, None if it was never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("App server did not stop within %.0f s: killing it", STOP_TIMEOUT_S)
        _signal_group(self.process.pid, signal.SIGKILL)  # anything it started, even if it exited
        code = self.process.wait()
        if code in (0, -signal.SIGTERM) and self.log_path:
            self.log_path.unlink(missing_ok=True)
        return code

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FIFTYONE_DISABLE_SERVICES", None)  # the server may need to start the database service
    env["FIFTYONE_SERVER"] = "1"  # what fiftyone/server/main.py sets: no singleton cache, no last-loaded writes
    env.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    return env


def port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def app_version(base_url: str) -> str | None:
    """The FiftyOne version the server at ``base_url`` reports, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{base_url}/fiftyone", timeout=2) as response:
            return json.loads(response.read()).get("version")
    except (OSError, ValueError, urllib.error.URLError):
        return None


# ---- the child process -------------------------------------------------------------------------------


def _die_with_parent(parent: int, stop) -> None:
    """SIGTERM from the kernel when the parent dies, and a poll in case prctl is unavailable."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        log.debug("prctl unavailable; relying on polling the parent")
    if os.getppid() != parent:  # it died before prctl took effect
        stop("parent exited")

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        stop("parent exited")

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def serve(*, port: int, address: str, parent: int) -> None:
    import asyncio

    os.environ["FIFTYONE_SERVER"] = "1"
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from fiftyone.server.app import app
    from fiftyone.server.events import set_port

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stopping = asyncio.Event()

    def stop(reason: str) -> None:
        log.info("App server stopping: %s", reason)
        threading.Timer(HARD_EXIT_S, os._exit, args=(3,)).start()  # daemon-free: fires even if serve hangs
        loop.call_soon_threadsafe(stopping.set)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, signal.Signals(sig).name)
    _die_with_parent(parent, stop)
    config = Config()
    config.bind = [f"{address}:{port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    set_port(port)
    loop.run_until_complete(hypercorn_serve(app, config, shutdown_trigger=stopping.wait))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m curate.app_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--parent", type=int, required=True, help="pid whose death ends this server")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(port=args.port, address=args.address, parent=args.parent)
    os._exit(0)  # do not wait for FiftyOne's non-daemon threads (notification service, db monitors)


if __name__ == "__main__":
    main()
