"""A private mongod on a loopback port, for tests and benchmarks.

Why not FiftyOne's embedded service with its own ``FIFTYONE_DATABASE_DIR``: FiftyOne's database service
attaches to any ``--51-service db`` process already running on the machine, whatever its database folder,
so a test session started while the user's App (or another session) runs would write into that database.
A server we start ourselves, reached through ``FIFTYONE_DATABASE_URI``, is ours alone; it dies with the
process that started it (Linux parent-death signal), even after a kill -9.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1


@dataclass
class PrivateMongod:
    process: subprocess.Popen
    uri: str
    dbpath: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not glibc Linux: the caller's atexit/stop() still ends it
        pass


def start_private_mongod(binary: Path, folder: Path) -> PrivateMongod:
    """Start ``binary`` on a free loopback port with its data in ``folder/db``; wait until it answers."""
    import pymongo

    dbpath = folder / "db"
    dbpath.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen([str(binary), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip",
                                "127.0.0.1", "--nounixsocket", "--logpath", str(folder / "mongod.log")],
                               stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    server = PrivateMongod(process, f"mongodb://127.0.0.1:{port}", dbpath)
    client = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=500)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                client.admin.command("ping")
                return server
            except pymongo.errors.PyMongoError:
                if process.poll() is not None or time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"mongod did not start; see {folder / 'mongod.log'}")
                time.sleep(0.2)
    finally:
        client.close()
