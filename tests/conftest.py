"""Test isolation: tests never touch a user's datasets.

Before FiftyOne is imported, point it at a private database: a mongod this session starts on a free
loopback port with its data in a temporary folder (curate/db_private.py says why FiftyOne's own service
is not private enough), or the server named by CURATE_TEST_DATABASE_URI (the scale-out test runs the
import tests that way). A FIFTYONE_DATABASE_URI from the user's shell is ignored. Subprocesses (the
`curate` CLI, the trainer, the App server) inherit the URI.
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
import uuid
from pathlib import Path



def _private_database() -> None:
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
    if os.environ.get("CURATE_TEST_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_URI"] = os.environ["CURATE_TEST_DATABASE_URI"]
        return
    from curate.db import embedded_mongod
    from curate.db_private import start_private_mongod

    folder = Path(tempfile.mkdtemp(prefix="curate-test-db-"))
    os.environ["FIFTYONE_DATABASE_DIR"] = str(folder)
    binary = embedded_mongod()
    if binary is None:  # no bundled mongod: FiftyOne's own service (run `make setup` to get one)
        return
    server = start_private_mongod(binary, folder)
    atexit.register(server.stop)
    os.environ["FIFTYONE_DATABASE_URI"] = server.uri


_private_database()
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # embedded mongod 6.0.5 warns on every start
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see trainer/__init__.py

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} not found at {path} (../shared/data is not present on this "
                    "machine)")
    return path


@pytest.fixture
def dataset_name(request):
    """A unique dataset name, deleted after the test."""
    name = f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    yield name
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)


@pytest.fixture
def curate_env():
    """Environment for running `curate` in a subprocess against the same test database."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def curate_cmd():
    return [sys.executable, "-m", "curate"]
