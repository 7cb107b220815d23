"""Scale-out from day one: the import tests pass against a separate MongoDB server reached through
FIFTYONE_DATABASE_URI (the same mongod binary, started here on a loopback port)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from curate.db import embedded_mongod
from curate.db_private import start_private_mongod

PROJECT = Path(__file__).resolve().parents[1]
IMPORT_TESTS = ["tests/test_ingest.py", "tests/test_import_resume.py"]


@pytest.fixture
def mongod_server(tmp_path):
    binary = embedded_mongod()
    if binary is None:
        pytest.skip("no mongod binary installed (run `make setup`)")
    server = start_private_mongod(binary, tmp_path)
    client = pymongo.MongoClient(server.uri)
    yield server.uri, client
    client.close()
    server.stop()


def test_import_tests_pass_against_a_separate_server(mongod_server):
    uri, client = mongod_server
    env = {**os.environ, "CURATE_TEST_DATABASE_URI": uri}
    env.pop("FIFTYONE_DATABASE_DIR", None)
    env.pop("FIFTYONE_DATABASE_URI", None)  # the session's own private server; the child must use `uri`
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *IMPORT_TESTS], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
    # the data went to that server: FiftyOne created its database there
    assert "fiftyone" in client.list_database_names()
    assert client["fiftyone"]["datasets"].count_documents({}) == 0  # every test cleaned up
