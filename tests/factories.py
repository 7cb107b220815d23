"""Tiny hand-made inputs for tests: images of a chosen size and annotation XML with chosen boxes."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from curate.boxes import PixelConvention
from curate.formats.records import BoxRecord
from curate.formats.voc_write import voc_xml_bytes


def make_image(path: Path, width: int, height: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 80, 40)).save(path, format=fmt)
    return path


def box(label: str, x0: float, y0: float, x1: float, y1: float, **attributes) -> BoxRecord:
    """A box as LabelImg writes it (0-based edges)."""
    return BoxRecord(label, (x0, y0, x1, y1), attributes)


def make_labelimg_xml(path: Path, filename: str, size: tuple[int, int], boxes: list[BoxRecord],
                      convention: PixelConvention = PixelConvention.EDGES_ZERO_BASED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(voc_xml_bytes(filename, size[0], size[1], 3, boxes, convention))
    return path


def train_tiny_run(dataset, root: Path, *, epochs: int, val_every: int) -> Path:
    """A real run folder (``root/run``) trained on ``dataset``'s train/val tags: the tiny backbone at 64 px,
    no augmentation; seconds on a CPU."""
    from curate.manifest import write_manifest
    from curate.recipe import Recipe, recipe_from_dict, recipe_to_dict
    from trainer.run import run_training

    classes = sorted(dataset.distinct("ground_truth.detections.label"))
    manifest = write_manifest(dataset, root / "m.jsonl", splits={"train": "train", "val": "val"},
                              classes=classes).path
    data = recipe_to_dict(Recipe())
    data["model"].update(backbone="tiny", image_size=[64, 64])
    data["augment"]["preset"] = "none"
    data["train"].update(epochs=epochs, batch_size=8, workers=0, lr=0.05, val_every=val_every)
    run_training(recipe_from_dict(data), manifest, root / "run", progress=False)
    return root / "run"


def keep_database_up() -> None:
    """Connect this process before a `curate` child does, so an embedded mongod outlives the child
    (FiftyOne stops it when its last client exits) and this process reads the same server."""
    import fiftyone as fo

    fo.list_datasets()
