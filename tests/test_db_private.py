"""The tests' private mongod: answers, is not FiftyOne's shared service, and dies with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from curate.db import embedded_mongod

STARTER = """
import sys, time
from pathlib import Path
from curate.db import embedded_mongod
from curate.db_private import start_private_mongod
server = start_private_mongod(embedded_mongod(), Path(sys.argv[1]))
print(server.process.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_session_database_is_a_private_server():
    assert os.environ.get("FIFTYONE_DATABASE_URI", "").startswith("mongodb://127.0.0.1:") or \
        embedded_mongod() is None


def test_private_mongod_dies_when_its_parent_is_killed(tmp_path):
    if embedded_mongod() is None:
        pytest.skip("no mongod binary installed (run `make setup`)")
    parent = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    mongod_pid = int(parent.stdout.readline())
    assert _alive(mongod_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(mongod_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(mongod_pid)
