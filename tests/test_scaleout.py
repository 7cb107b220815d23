"""Scale-out from day one: the import tests pass against a separate MongoDB server reached through
FIFTYONE_DATABASE_URI (the same mongod binary, started here on a loopback port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest

from curate.db import embedded_mongod

PROJECT = Path(__file__).resolve().parents[1]
IMPORT_TESTS = ["tests/test_ingest.py", "tests/test_import_resume.py"]
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mongod_server(tmp_path):
    binary = embedded_mongod()
    if binary is None:
        pytest.skip("no mongod binary installed (run `make setup`)")
    port = _free_port()
    (tmp_path / "db").mkdir()
    proc = subprocess.Popen([str(binary), "--dbpath", str(tmp_path / "db"), "--port", str(port),
                             "--bind_ip", "127.0.0.1", "--nounixsocket",
                             "--logpath", str(tmp_path / "mongod.log")])
    uri = f"mongodb://127.0.0.1:{port}"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mongod did not start; see {tmp_path / 'mongod.log'}")
            time.sleep(0.2)
    yield uri, client
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def test_import_tests_pass_against_a_separate_server(mongod_server):
    uri, client = mongod_server
    env = {**os.environ, "CURATE_TEST_DATABASE_URI": uri}
    env.pop("FIFTYONE_DATABASE_DIR", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *IMPORT_TESTS], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
    # the data went to that server: FiftyOne created its database there
    assert "fiftyone" in client.list_database_names()
    assert client["fiftyone"]["datasets"].count_documents({}) == 0  # every test cleaned up
