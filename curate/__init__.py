"""curate: from messy box annotations to a trained, evaluated SSD detector."""

from __future__ import annotations

import os

__version__ = "0.1.0"

# Before FiftyOne is imported anywhere: no usage tracking (and no network attempt on this machine).
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
if not os.environ.get("FIFTYONE_DATABASE_URI"):
    # The embedded mongod (6.0.5) is the oldest version FiftyOne supports and it says so on every
    # start; `curate doctor` reports the version instead. A user's own server keeps the check.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
