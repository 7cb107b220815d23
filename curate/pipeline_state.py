"""``RUN/pipeline.json``: what each `curate run` stage last did, rewritten atomically after every change.

Layout::

    {"state_version": 1, "stages": {"train": {"status": "done" | "running" | "failed",
        "fingerprint": "...", "settings": {...the recipe keys it read...}, "inputs": {...import: files;
        train: the dataset's tag / label counts and box sum...},
        "upstream": "...", "started_at": "...", "finished_at": "...", "seconds": 12.3,
        "summary": {...what it produced...}, "error": "..."}, ...}}

A stage is marked ``running`` before it starts, so a crash or a kill leaves ``running`` behind and the
next run starts again there (training then resumes from its last checkpoint, unless train is forced).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from curate.errors import CurateError

STATE_FILE = "pipeline.json"
STATE_VERSION = 1


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


class PipelineState:
    def __init__(self, path: Path, stages: dict | None = None):
        self.path = path
        self.stages: dict[str, dict] = stages or {}

    @classmethod
    def load(cls, folder: Path) -> PipelineState:
        path = folder / STATE_FILE
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CurateError(f"{path}: unreadable ({exc}); fix: delete it to run every stage again")
        if data.get("state_version") != STATE_VERSION:
            raise CurateError(f"{path}: state_version {data.get('state_version')!r} is not "
                              f"{STATE_VERSION}; fix: delete it to run every stage again")
        return cls(path, data.get("stages", {}))

    def record(self, stage: str) -> dict:
        return self.stages.get(stage, {})

    def mark_running(self, stage: str, **fields) -> None:
        self.stages[stage] = {"status": "running", "started_at": _now(), **fields}
        self._write()

    def mark_done(self, stage: str, **fields) -> None:
        self.stages[stage] = {**self.stages.get(stage, {}), "status": "done", "finished_at": _now(),
                              "error": None, **fields}
        self._write()

    def mark_failed(self, stage: str, error: str) -> None:
        self.stages[stage] = {**self.stages.get(stage, {}), "status": "failed", "finished_at": _now(),
                              "error": error}
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"state_version": STATE_VERSION, "stages": self.stages}, indent=2,
                                  default=str))
        os.replace(tmp, self.path)  # atomic: a reader never sees half a file
