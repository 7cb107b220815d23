"""A small trained-and-evaluated dataset shared by the report, review and browser tests.

Built once per test process (training takes ~10 s on a CPU) and reused by every module that asks:
pytest gives each importing module its own fixture definition, so the cache is here, not in pytest.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from factories import train_tiny_run

from curate.db_private import free_port

# unique: on a shared machine FiftyOne may attach to another user's running database service
DATASET = f"test-review-{uuid.uuid4().hex[:8]}"
IMAGES = 24
EPOCHS = 8
_built: dict[str, "Evaluated"] = {}


@dataclass(frozen=True)
class Evaluated:
    name: str
    run_dir: Path
    report: dict  # eval.json
    seconds: float  # time to import, train and evaluate


def build_evaluated(root: Path) -> Evaluated:
    """Import synthetic VOC images, train the tiny SSD for a few epochs, evaluate on the val split."""
    if DATASET in _built:
        return _built[DATASET]
    import fiftyone as fo

    from curate.evaluate import evaluate_dataset
    from curate.ingest import import_path
    from curate.synth import write_voc_folder

    start = time.perf_counter()
    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    folder = write_voc_folder(root / "voc", IMAGES, width=96, height=96, min_boxes=1, max_boxes=3)
    import_path(folder, dataset_name=DATASET, find_duplicates=False, progress=False)
    dataset = fo.load_dataset(DATASET)
    run_dir = train_tiny_run(dataset, root, epochs=EPOCHS, val_every=4)
    report = evaluate_dataset(dataset, run_dir, split="val", score_threshold=0.05)
    _built[DATASET] = Evaluated(DATASET, run_dir, report, time.perf_counter() - start)
    return _built[DATASET]


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory) -> Evaluated:
    yield build_evaluated(tmp_path_factory.mktemp("review-evaluated"))
    import fiftyone as fo

    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    _built.clear()


@dataclass
class Dom:
    """What a test reads back from report HTML: tables by id (rows of cell texts), images, text."""

    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    images: list[dict[str, str]] = field(default_factory=list)  # attributes of every <img>
    text: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def column(self, table_id: str, name: str) -> dict[str, str]:
        """{first cell: cell under header ``name``} for a table."""
        header, *rows = self.tables[table_id]
        index = header.index(name)
        return {row[0]: row[index] for row in rows}


class _DomParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.dom, self._table, self._row, self._cell = Dom(), None, None, None

    def handle_starttag(self, tag, attrs):
        self.dom.tags.append(tag)
        attributes = dict(attrs)
        if tag == "table":
            self._table = self.dom.tables.setdefault(attributes.get("id", f"table{len(self.dom.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.dom.images.append(attributes)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.dom.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_html(text: str) -> Dom:
    parser = _DomParser()
    parser.feed(text)
    return parser.dom


def decode_data_uri(src: str):
    """The PIL image inside a data: URI (raises if it does not decode)."""
    from PIL import Image

    header, _, payload = src.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:40]
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


# ---- `curate review` as a subprocess ---------------------------------------------------------------

APP_LINE = "FiftyOne App: "
START_TIMEOUT_S = 120  # two fresh interpreters import fiftyone on a shared 2-core machine


def database_env(env: dict) -> dict:
    """``env`` pinned to the MongoDB this test process uses.

    FiftyOne's embedded database service is found by process name, not by FIFTYONE_DATABASE_DIR: on a
    machine where someone else's FiftyOne is running, a child could attach to their database."""
    import fiftyone.core.odm.database as foo

    host, port = foo.get_db_client().address
    return {**env, "FIFTYONE_DATABASE_URI": f"mongodb://{host}:{port}"}


@dataclass
class ReviewProcess:
    process: object  # subprocess.Popen
    port: int
    lines: list[str]
    url: str

    def output(self) -> str:
        return "\n".join(self.lines)


def start_review(command: list[str], env: dict, dataset: str, *extra: str) -> ReviewProcess:
    """Start `curate review DATASET --no-browser --port P` in its own session (like a terminal job) and
    wait for the App's URL line."""
    import queue
    import subprocess
    import threading

    port = free_port()
    process = subprocess.Popen([*command, "review", dataset, "--no-browser", "--port", str(port), *extra],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines: list[str] = []
    arrived: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            arrived.put(line)
        arrived.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = arrived.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"curate review exited {process.wait()}:\n" + "\n".join(lines))
        if line.startswith(APP_LINE):
            return ReviewProcess(process, port, lines, line[len(APP_LINE):].split()[0])
    process.kill()
    raise AssertionError("no App URL within %d s:\n%s" % (START_TIMEOUT_S, "\n".join(lines)))


def app_server_processes(parent: int) -> list:
    """Live ``curate.app_server`` processes started for ``parent`` (found by command line, so an orphan
    re-parented to init is found too)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if "curate.app_server" in cmdline and str(parent) in cmdline and \
                process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found
