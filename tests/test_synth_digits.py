"""curate/synth_digits.py: MNIST idx/CSV reading, MNIST-detection and CIFAR-like VOC folders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.boxes import PixelConvention
from curate.errors import CurateError
from curate.formats.voc_xml import read_voc_xml
from curate.mnist import (MNIST_CLASSES, MnistDownloadError, MnistFormatError, download_mnist, load_mnist,
                          load_mnist_csv, load_mnist_idx, read_idx)
from curate.synth_digits import (CIFAR_LIKE_CLASSES, INK_LEVEL, ink_box, render_digit_canvas,
                                 split_assignment, write_cifar_like_detection, write_mnist_detection)

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
CANVAS = 300
SIZES = (15, 100)
MAX_IOU = 0.1


def _real_mnist() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        reason = f"real MNIST files not found at {MNIST_DIR} (../shared/data is not present on this machine)"
        print(reason)
        pytest.skip(reason)
    return MNIST_DIR


def _idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of a uint8 array, written by hand (big-endian dimensions)."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def _pool(n_per_class: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fake 28x28 digits: a bright bar whose position depends on the class, 4 px margin like MNIST."""
    rng = np.random.default_rng(seed)
    digits, labels = [], []
    for label in range(10):
        for _ in range(n_per_class):
            d = np.zeros((28, 28), np.uint8)
            x0 = 4 + label
            d[4:24, x0:x0 + 6] = rng.integers(180, 256)
            digits.append(d)
            labels.append(label)
    return np.stack(digits), np.array(labels, np.uint8)


@pytest.fixture(scope="module")
def digits():
    """Real MNIST test digits when ../shared/data/mnist is present, else the fake pool."""
    if (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        d, l = load_mnist(MNIST_DIR, "test")
        return d[:2000], l[:2000]
    return _pool()


def _read_folder(root: Path) -> dict[str, tuple]:
    """stem -> (boxes, declared size) read back with the VOC reader."""
    out = {}
    for xml in sorted((root / "Annotations").glob("*.xml")):
        ann = read_voc_xml(xml, PixelConvention.VOC_ONE_BASED)
        assert not ann.errors, ann.errors
        out[xml.stem] = (ann.boxes, ann.declared_size)
    return out


def _split(root: Path, name: str) -> list[str]:
    return (root / "ImageSets" / "Main" / f"{name}.txt").read_text().split()


def _iou(a, b) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# --- idx / CSV ---------------------------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_idx_files_parse():
    root = _real_mnist()
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    digits, labels = load_mnist_idx(root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz")
    assert len(digits) == len(labels) == 10000
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's well-known first test labels
    # not MNIST's published test counts (980, 1135, ...): this copy's labels were altered somewhere upstream
    assert labels.sum() > 0 and all(850 <= n <= 1150 for n in np.bincount(labels, minlength=10))
    train_labels = read_idx(root / "train-labels-idx1-ubyte.gz", ndim=1)
    assert train_labels.shape == (60000,) and train_labels[:5].tolist() == [5, 0, 4, 1, 9]


@pytest.mark.realdata
def test_real_csv_and_train_split_fall_back_to_it():
    root = _real_mnist()
    digits, labels = load_mnist_csv(root / "mnist_5k.csv.gz")
    assert digits.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    train_digits, _ = load_mnist(root, "train")  # no train-images idx here: the CSV is used
    assert np.array_equal(train_digits, digits)


def test_idx_round_trip_gzip_and_raw(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8)
    (tmp_path / "raw-idx3").write_bytes(_idx_bytes(array))
    (tmp_path / "gz-idx3.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "raw-idx3"), array)
    assert np.array_equal(read_idx(tmp_path / "gz-idx3.gz", ndim=3, dtype_code=0x08), array)


@pytest.mark.parametrize("mangle, field", [
    (lambda b: b"\x00\x00\x07\x03" + b[4:], "magic"),  # unknown type byte
    (lambda b: b"\x12\x34" + b[2:], "magic"),  # first two bytes must be zero
    (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic"),  # a labels magic where images are expected
    (lambda b: b[:3], "header"),  # shorter than the magic number
    (lambda b: b[:10], "header"),  # cut inside the dimensions
    (lambda b: b[:-1], "data"),  # one pixel short
    (lambda b: b + b"\x00", "data"),  # trailing garbage
])
@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_idx_raises_typed_error_naming_the_file(tmp_path, mangle, field, compressed):
    data = mangle(_idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    path = tmp_path / ("bad-images-idx3-ubyte" + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(MnistFormatError) as info:
        read_idx(path, ndim=3, dtype_code=0x08)
    assert info.value.path == str(path) and info.value.field == field
    assert str(path) in str(info.value) and info.value.fix


def test_truncated_gzip_and_mismatched_pair_raise_typed_errors(tmp_path):
    gz = gzip.compress(_idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(MnistFormatError, match="cut.gz") as info:
        read_idx(tmp_path / "cut.gz")
    assert info.value.field == "gzip"
    (tmp_path / "images").write_bytes(_idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    (tmp_path / "labels").write_bytes(_idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(MnistFormatError, match="2 labels for 3 images"):
        load_mnist_idx(tmp_path / "images", tmp_path / "labels")
    (tmp_path / "labels").write_bytes(_idx_bytes(np.array([0, 1, 12], np.uint8)))
    with pytest.raises(MnistFormatError, match="0..9"):
        load_mnist_idx(tmp_path / "images", tmp_path / "labels")


def test_csv_with_header_and_bad_csvs(tmp_path):
    rows = [[0] * 784 + [3], [255] * 784 + [7]]
    good = tmp_path / "digits.csv"
    good.write_text("p," * 784 + "label\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    digits, labels = load_mnist_csv(good)
    assert labels.tolist() == [3, 7] and digits[1].min() == 255 and digits.shape == (2, 28, 28)
    short = tmp_path / "short.csv"
    short.write_text("1,2,3\n")
    with pytest.raises(MnistFormatError, match="785") as info:
        load_mnist_csv(short)
    assert info.value.path == str(short)
    text = tmp_path / "text.csv"
    text.write_text("1," * 784 + "3\n" + "x," * 784 + "3\n")
    with pytest.raises(MnistFormatError, match="text.csv"):
        load_mnist_csv(text)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(CurateError, match="download_mnist"):
        load_mnist(tmp_path, "test")


@pytest.mark.realdata
def test_download_checks_md5_without_network(tmp_path):
    """A file:// mirror (no internet): a file matching its published MD5 is kept, another is refused."""
    root = _real_mnist()
    dest = tmp_path / "mnist"
    download_mnist(dest, mirror=root.as_uri() + "/", names=["train-labels-idx1-ubyte.gz"])
    assert (dest / "train-labels-idx1-ubyte.gz").read_bytes() == (root / "train-labels-idx1-ubyte.gz").read_bytes()
    # our t10k labels were recompressed (same digits, other gzip bytes), so the original MD5 does not match
    with pytest.raises(MnistDownloadError, match="MD5"):
        download_mnist(dest, mirror=root.as_uri() + "/", names=["t10k-labels-idx1-ubyte.gz"])
    assert sorted(p.name for p in dest.iterdir()) == ["train-labels-idx1-ubyte.gz"]  # no .part left


# --- MNIST-detection ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("synth") / "mnist-det"
    write_mnist_detection(root, 20, digits=digits[0], labels=digits[1], seed=7, split_fractions=(0.6, 0.2, 0.2))
    return root


def test_mnist_folder_counts_and_splits(mnist_folder):
    read = _read_folder(mnist_folder)
    assert len(read) == 20 and len(list((mnist_folder / "JPEGImages").glob("*.jpg"))) == 20
    train, val, test = (_split(mnist_folder, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert sorted(train + val + test) == sorted(read)
    assert sorted(_split(mnist_folder, "trainval")) == sorted(train + val)
    for boxes, size in read.values():
        assert size == (CANVAS, CANVAS, 3) and 1 <= len(boxes) <= 20
        assert {b.label for b in boxes} <= set(MNIST_CLASSES)
        for b in boxes:
            x0, y0, x1, y1 = b.box
            assert 0 <= x0 < x1 <= CANVAS and 0 <= y0 < y1 <= CANVAS
            assert x1 - x0 <= SIZES[1] and y1 - y0 <= SIZES[1]
        assert all(_iou(a.box, b.box) <= MAX_IOU for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert sum(len(b) for b, _ in read.values()) > 20 * 5  # 1-20 digits an image: about 10 on average


def test_mnist_is_deterministic(tmp_path, mnist_folder, digits):
    again = write_mnist_detection(tmp_path / "again", 20, digits=digits[0], labels=digits[1], seed=7,
                                  split_fractions=(0.6, 0.2, 0.2))
    for xml in (mnist_folder / "Annotations").glob("*.xml"):
        assert (again / "Annotations" / xml.name).read_bytes() == xml.read_bytes()
    assert _split(again, "train") == _split(mnist_folder, "train")
    other = write_mnist_detection(tmp_path / "other", 3, digits=digits[0], labels=digits[1], seed=8)
    assert (other / "Annotations" / "000000.xml").read_bytes() != \
        (mnist_folder / "Annotations" / "000000.xml").read_bytes()


def test_digit_cells_in_size_range_ink_box_inside_cell_and_labels_match(digits):
    pool, labels = digits
    for i in range(10):
        pixels, placed = render_digit_canvas(np.random.default_rng([3, i]), pool, labels, canvas=CANVAS,
                                             digits_per_image=(1, 20), digit_size=SIZES, max_overlap_iou=MAX_IOU)
        assert pixels.shape == (CANVAS, CANVAS) and placed
        for p in placed:
            cx0, cy0, cx1, cy1 = p.cell
            assert SIZES[0] <= cx1 - cx0 == cy1 - cy0 <= SIZES[1]
            assert 0 <= cx0 and 0 <= cy0 and cx1 <= CANVAS and cy1 <= CANVAS
            x0, y0, x1, y1 = p.box
            assert cx0 <= x0 < x1 <= cx1 and cy0 <= y0 < y1 <= cy1
            assert p.label == str(int(labels[p.index]))
        assert all(_iou(a.box, b.box) <= MAX_IOU for k, a in enumerate(placed) for b in placed[k + 1:])


def test_box_is_tight_around_the_ink(digits):
    """Each box edge row/column holds ink; the ring just outside it holds none, unless another box covers it."""
    pool, labels = digits
    for i in range(5):
        pixels, placed = render_digit_canvas(np.random.default_rng([4, i]), pool, labels, canvas=CANVAS,
                                             digits_per_image=(1, 20), digit_size=SIZES, max_overlap_iou=MAX_IOU)
        ink = pixels >= INK_LEVEL
        covered = np.zeros_like(ink)
        for p in placed:
            covered[p.box[1]:p.box[3], p.box[0]:p.box[2]] = True
        assert not (ink & ~covered).any()  # every ink pixel is boxed
        for p in placed:
            x0, y0, x1, y1 = p.box
            inside = ink[y0:y1, x0:x1]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    # single digits: nothing else on the canvas, so the ring outside the box is plain background
    for i in range(10):
        pixels, (p,) = render_digit_canvas(np.random.default_rng([5, i]), pool, labels, canvas=CANVAS,
                                           digits_per_image=(1, 1), digit_size=SIZES, max_overlap_iou=MAX_IOU)
        x0, y0, x1, y1 = p.box
        assert ink_box(pixels) == p.box
        padded = np.pad(pixels, 1)[y0:y1 + 2, x0:x1 + 2]  # the box plus a 1 px ring
        ring = np.concatenate([padded[0], padded[-1], padded[:, 0], padded[:, -1]])
        assert ring.max() < INK_LEVEL


def test_box_is_tight_on_the_written_jpeg(tmp_path, digits):
    root = write_mnist_detection(tmp_path / "one", 4, digits=digits[0], labels=digits[1], digits_per_image=(1, 1),
                                 digit_size=(60, 100), seed=2)
    for stem, (boxes, _) in _read_folder(root).items():
        (b,) = boxes
        x0, y0, x1, y1 = (int(v) for v in b.box)
        grey = np.asarray(Image.open(root / "JPEGImages" / f"{stem}.jpg").convert("L")).astype(int)
        padded = np.pad(grey, 1)[y0:y1 + 2, x0:x1 + 2]
        ring = np.concatenate([padded[0], padded[-1], padded[:, 0], padded[:, -1]])
        assert ring.max() < INK_LEVEL + 24  # JPEG ringing on top of the faint halo
        assert np.median(ring) < INK_LEVEL and grey[y0:y1, x0:x1].max() > 128


def test_blank_digits_are_never_boxed():
    pool, labels = _pool()
    pool[labels == 3] = 0  # every '3' is blank
    for i in range(5):
        _, placed = render_digit_canvas(np.random.default_rng(i), pool, labels, canvas=100,
                                        digits_per_image=(5, 10), digit_size=(15, 30), max_overlap_iou=MAX_IOU)
        assert placed and "3" not in {p.label for p in placed}


def test_small_digit_is_not_hidden_inside_a_large_one():
    """IoU alone allows it (a 15 px box inside a 100 px one has IoU ~0.02); the covered-fraction rule does not."""
    pool, labels = _pool()
    for i in range(20):
        _, placed = render_digit_canvas(np.random.default_rng(i), pool, labels, canvas=120,
                                        digits_per_image=(8, 8), digit_size=(15, 100), max_overlap_iou=MAX_IOU)
        for a in placed:
            for b in placed:
                if a is not b:
                    w = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
                    h = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
                    small = min((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]),
                                (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
                    assert max(w, 0) * max(h, 0) <= 0.3 * small


def test_bad_arguments_are_refused(tmp_path):
    pool, labels = _pool()
    with pytest.raises(CurateError, match="split fractions"):
        split_assignment(10, (0.5, 0.2, 0.2), 0)
    with pytest.raises(CurateError, match="digit_size"):
        write_mnist_detection(tmp_path, 1, digits=pool, labels=labels, digit_size=(50, 20))
    with pytest.raises(CurateError, match="labels"):
        write_mnist_detection(tmp_path, 1, digits=pool, labels=labels[:3])
    assert split_assignment(10, (1.0, 0.0, 0.0), 0) == ["train"] * 10
    write_cifar_like_detection(tmp_path / "out", 3)
    write_cifar_like_detection(tmp_path / "out", 3)  # the same run again overwrites
    with pytest.raises(CurateError, match="empty folder"):  # fewer images would leave stale ones behind
        write_cifar_like_detection(tmp_path / "out", 2)


def test_mnist_folder_imports_with_every_box(mnist_folder, dataset_name):
    import fiftyone as fo

    from curate.ingest import import_folder

    read = _read_folder(mnist_folder)
    report = import_folder(mnist_folder, dataset_name=dataset_name, progress=False)
    expected = sum(len(boxes) for boxes, _ in read.values())
    assert (report.format, report.added, report.boxes, report.errors) == ("voc", 20, expected, [])
    assert sum(report.classes.values()) == expected and set(report.classes) <= set(MNIST_CLASSES)
    dataset = fo.load_dataset(dataset_name)
    assert len(dataset.match_tags("train")) == 12 and len(dataset.match_tags("test")) == 4
    sample = dataset.match(fo.ViewField("filepath").ends_with("000000.jpg")).first()
    boxes, _ = read["000000"]
    for det, b in zip(sample.ground_truth.detections, boxes):
        assert det.label == b.label
        assert det.bounding_box == pytest.approx([b.box[0] / CANVAS, b.box[1] / CANVAS,
                                                  (b.box[2] - b.box[0]) / CANVAS, (b.box[3] - b.box[1]) / CANVAS])


# --- CIFAR-like --------------------------------------------------------------------------------------------

def test_cifar_like_counts_boxes_and_determinism(tmp_path):
    root = write_cifar_like_detection(tmp_path / "a", 12, canvas=(128, 96), objects_per_image=(1, 4), seed=3)
    read = _read_folder(root)
    assert len(read) == 12 and len(list((root / "JPEGImages").glob("*.jpg"))) == 12
    assert sorted(_split(root, "train") + _split(root, "val") + _split(root, "test")) == sorted(read)
    labels = set()
    for stem, (boxes, size) in read.items():
        assert size == (128, 96, 3) and 1 <= len(boxes) <= 4
        assert Image.open(root / "JPEGImages" / f"{stem}.jpg").size == (128, 96)
        for b in boxes:
            x0, y0, x1, y1 = b.box
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 96 and 24 <= x1 - x0 == y1 - y0 <= 48
            labels.add(b.label)
        assert all(_iou(a.box, b.box) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert labels <= set(CIFAR_LIKE_CLASSES) and len(labels) >= 5
    again = write_cifar_like_detection(tmp_path / "b", 12, canvas=(128, 96), seed=3)
    for xml in (root / "Annotations").glob("*.xml"):
        assert (again / "Annotations" / xml.name).read_bytes() == xml.read_bytes()
    assert (again / "JPEGImages" / "000005.jpg").read_bytes() == (root / "JPEGImages" / "000005.jpg").read_bytes()
