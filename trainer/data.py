"""The manifest (curate/manifest.py) as a torch Dataset, and its DataLoaders.

Images are decoded with PIL and normalised at load: grayscale, palette, alpha and 16-bit images become
8-bit RGB (curate clean reports them; here they simply work). Each item is ``(image [3, H, W] float,
boxes [G, 4] relative xyxy, labels [G] int64 in 1..C, index)``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, WeightedRandomSampler

from trainer.augment import seed_augmentation
from trainer.errors import TrainerError

NORMALISE_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics (its backbones expect them)
NORMALISE_STD = (0.229, 0.224, 0.225)
SIXTEEN_BIT_MAX = 65535.0


class ManifestError(TrainerError, ValueError):
    pass


@dataclass
class Manifest:
    header: dict
    records: list[dict]

    @property
    def classes(self) -> list[str]:
        return list(self.header["classes"])

    def split(self, name: str) -> list[dict]:
        return [r for r in self.records if r["split"] == name]


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
        header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:] if line.strip()]
    except (OSError, IndexError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not a curate manifest ({exc}); fix: write it with `curate train` "
                            "or `curate manifest`") from None
    if header.get("manifest_version") != 1 or "classes" not in header:
        raise ManifestError(f"{path}: header lacks manifest_version 1 / classes; fix: re-create the manifest")
    return Manifest(header, records)


def load_rgb(path: str) -> np.ndarray:
    """``H x W x 3`` uint8 RGB from any image PIL reads (stored pixel orientation, as the boxes are)."""
    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            pixels = np.asarray(image, dtype=np.float32)
            scale = SIXTEEN_BIT_MAX if pixels.max() > 255 else 255.0
            grey = np.clip(pixels / scale * 255.0, 0, 255).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB, one image ``[H, W, 3]`` or a batch ``[N, H, W, 3]`` -> float ``[3, H, W]`` / ``[N, 3, H, W]``
    in [0, 1] normalised with :data:`NORMALISE_MEAN` / :data:`NORMALISE_STD`: what every model here takes."""
    tensor = torch.from_numpy(np.require(images, requirements=["C", "W"])).movedim(-1, -3).float() / 255.0
    return (tensor - torch.tensor(NORMALISE_MEAN).view(3, 1, 1)) / torch.tensor(NORMALISE_STD).view(3, 1, 1)


class ManifestDataset(Dataset):
    def __init__(self, records: list[dict], classes: list[str], pipeline):
        self.records = records
        self.classes = list(classes)
        self.class_index = {name: i + 1 for i, name in enumerate(classes)}  # 0 is background
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = load_rgb(record["filepath"])
        labels = np.array([self.class_index[name] for name in record["labels"]], dtype=np.int64)
        out = self.pipeline(image=image, bboxes=np.array(record["boxes"], dtype=np.float32).reshape(-1, 4),
                            labels=labels)
        height, width = out["image"].shape[:2]
        boxes = torch.tensor(np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4))
        boxes /= torch.tensor([width, height, width, height], dtype=torch.float32)
        return (normalise(out["image"]), boxes,
                torch.as_tensor(np.asarray(out["labels"], dtype=np.int64)), index)


def collate(batch):
    images, boxes, labels, indices = zip(*batch)
    return torch.stack(images), list(boxes), list(labels), list(indices)


def _worker_init(worker_id: int) -> None:
    """A different, reproducible augmentation stream per worker and epoch (the loader's seed varies)."""
    info = torch.utils.data.get_worker_info()
    seed = int(torch.initial_seed() % (2 ** 31))
    seed_augmentation(info.dataset.pipeline, seed)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def set_epoch(loader: DataLoader, epoch: int, seed: int) -> None:
    """Shuffling and augmentation depend only on (seed, epoch), so a resumed run repeats them exactly."""
    loader.generator.manual_seed(seed * 100_003 + epoch)
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if loader.num_workers == 0:
        seed_augmentation(loader.dataset.pipeline, seed * 100_003 + epoch)


def make_loader(dataset: ManifestDataset, *, batch_size: int, train: bool, workers: int, seed: int,
                distributed: bool = False) -> DataLoader:
    """Shuffled (or weighted, when the manifest has unequal weights) for training; ordered otherwise."""
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    weights = [r.get("weight", 1.0) for r in dataset.records]
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=train, seed=seed, drop_last=train)
    elif train and len(set(weights)) > 1:
        sampler = WeightedRandomSampler(weights, num_samples=len(weights), generator=generator)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, collate_fn=collate, worker_init_fn=_worker_init if workers else None,
                      generator=generator, drop_last=train and len(dataset) > batch_size,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())
