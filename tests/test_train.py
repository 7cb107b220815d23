"""Training: a tiny SSD overfits a handful of images; a killed run resumes exactly; fine-tuning onto a
new class list; a diverging loss names its images. Real training on the CPU, small on purpose."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from curate.recipe import Recipe, recipe_from_dict, recipe_to_dict
from curate.synth import render_image
from trainer.build import model_from_recipe
from trainer.checkpoint import load_checkpoint
from trainer.engine import TrainingDiverged
from trainer.run import run_training

PROJECT = Path(__file__).resolve().parents[1]


def _manifest(tmp: Path, n: int, *, size: int = 96, seed: int = 0, split_val: bool = True) -> Path:
    images = tmp / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        image, boxes = render_image(seed * 1000 + i, size, size, max_boxes=2)
        path = images / f"{seed}_{i}.jpg"
        image.save(path, quality=95)
        for split in ("train", "val") if split_val else ("train",):
            records.append({"id": str(i), "filepath": str(path), "width": size, "height": size,
                            "boxes": [list(b.box) for b in boxes], "labels": [b.label for b in boxes],
                            "split": split, "weight": 1.0})
    classes = sorted({label for r in records for label in r["labels"]})
    path = tmp / f"manifest_{seed}.jsonl"
    with path.open("w") as handle:
        handle.write(json.dumps({"manifest_version": 1, "classes": classes}) + "\n")
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path


def _recipe(**train) -> Recipe:
    data = recipe_to_dict(Recipe())
    data["model"].update(backbone="tiny", image_size=[64, 64])
    data["augment"]["preset"] = "none"
    data["train"].update({"epochs": 4, "batch_size": 4, "workers": 0, "lr": 0.05, "warmup_epochs": 1,
                          "val_every": 100, **train})
    return recipe_from_dict(data)


@pytest.mark.slow
def test_tiny_ssd_overfits_a_few_images(tmp_path):
    manifest = _manifest(tmp_path, 8)
    result = run_training(_recipe(epochs=60, batch_size=8, lr=0.05, val_every=60, weight_decay=0.0),
                          manifest, tmp_path / "run", progress=False)
    final = result.history[-1]
    assert final["map50"] > 0.8, final
    assert final["train_loss"] < result.history[0]["train_loss"] / 4
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl", "curves.png", "recipe.yaml"):
        assert (tmp_path / "run" / name).is_file()


def _trainer_command(recipe_path: Path, manifest: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "trainer", str(recipe_path), "--manifest", str(manifest), "--out", str(out),
            "--no-progress"]


def _write_recipe(path: Path, recipe: Recipe) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(recipe_to_dict(recipe)))
    return path


def _last_epoch(out: Path) -> int:
    rows = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    return len(rows)


@pytest.mark.slow
def test_kill9_then_resume_continues_exactly(tmp_path):
    manifest = _manifest(tmp_path, 12, split_val=False)
    recipe = _write_recipe(tmp_path / "r.yaml", _recipe(epochs=6, batch_size=4))
    straight = tmp_path / "straight"
    subprocess.run(_trainer_command(recipe, manifest, straight), check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_trainer_command(recipe, manifest, killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while _last_epoch(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted_at = load_checkpoint(killed / "last.pt")["epoch"]
    assert 2 <= interrupted_at < 6, "the run was not interrupted mid-way"
    subprocess.run(_trainer_command(recipe, manifest, killed) + ["--resume"], check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


def test_fine_tune_onto_a_new_class_list_rebuilds_only_the_head(tmp_path):
    first = run_training(_recipe(epochs=1), _manifest(tmp_path, 4, split_val=False), tmp_path / "a",
                         progress=False)
    recipe = _recipe(epochs=1, init_from=str(first.out_dir / "last.pt"))
    model, report = model_from_recipe(recipe, ["only", "two"], torch.device("cpu"))
    assert report.loaded > 0 and report.skipped_shape > 0
    saved = load_checkpoint(first.out_dir / "last.pt")["model"]
    own = model.state_dict()
    backbone_key = next(k for k in saved if k.startswith("backbone."))
    assert torch.equal(own[backbone_key], saved[backbone_key])


def test_diverging_loss_names_the_images(tmp_path):
    manifest = _manifest(tmp_path, 4, split_val=False)
    recipe = _recipe(epochs=3, momentum=0.0, warmup_epochs=0)
    exploding = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, lr=1e12))  # past the
    with pytest.raises(TrainingDiverged, match=r"images/0_\d\.jpg"):                      # recipe's range
        run_training(exploding, manifest, tmp_path / "r", progress=False)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    manifest = _manifest(tmp_path, 8, split_val=False)
    recipe = _write_recipe(tmp_path / "r.yaml", _recipe(epochs=2, batch_size=2))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "trainer", str(recipe), "--manifest", str(manifest), "--out", str(tmp_path / "ddp"),
               "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    saved = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert saved["epoch"] == 2 and _last_epoch(tmp_path / "ddp") == 2
    assert not any(k.startswith("module.") for k in saved["model"])
