"""Training curves (PNG) and the CSV twin of metrics.jsonl."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 110


def plot_history(history: list[dict], path: Path) -> Path:
    """Train/val loss, mAP@0.5 and learning rate against epoch."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(epochs, [r["train_loss"] for r in history], label="train loss")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        axes[0].plot(*zip(*val), marker="o", label="val loss")
    axes[0].set_title("loss")
    axes[0].legend()
    maps = [(r["epoch"], r["map50"]) for r in history if r.get("map50") is not None]
    if maps:
        axes[1].plot(*zip(*maps), marker="o", color="green")
    axes[1].set_title("val mAP@0.5")
    axes[1].set_ylim(0, 1)
    axes[2].plot(epochs, [r["lr"] for r in history], color="purple")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_csv(jsonl: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return out
