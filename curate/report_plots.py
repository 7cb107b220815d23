"""The report's charts as PNG bytes (matplotlib, Agg backend: works with no display).

Every function takes plain data read from ``eval.json`` or ``metrics.jsonl`` and returns the PNG, so the
HTML writer can embed it and a test can decode it. ``-1`` in eval.json means "no boxes to measure":
such points are left out of a chart, never drawn as a zero.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100
PR_COLUMNS = 4  # small multiples across
PR_PANEL_INCHES = 2.6
MAX_PR_PANELS = 48  # beyond this a page of tiny plots helps no one; the per-class table has them all
MISSING = -1.0  # eval.json's value for "nothing to measure"
LOSS_KEYS = ("train_loss", "train_cls", "train_loc", "val_loss")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def pr_curves(curves: dict[str, dict], ap_per_class: dict[str, float]) -> bytes:
    """One precision-recall panel per class, its AP in the title."""
    names = list(curves)[:MAX_PR_PANELS]
    columns = max(1, min(PR_COLUMNS, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * PR_PANEL_INCHES, rows * PR_PANEL_INCHES),
                             squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.flat, names):
        recall, precision = curves[name]["recall"], curves[name]["precision"]
        ax.plot(recall, precision, color="tab:blue")
        ax.fill_between(recall, precision, alpha=0.15, color="tab:blue")
        ap = ap_per_class.get(name, MISSING)
        ax.set_title(f"{name}  AP {ap:.3f}" if ap >= 0 else f"{name}  (no boxes)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("recall")
    for ax in axes[:, 0]:
        ax.set_ylabel("precision")
    fig.tight_layout()
    return _png(fig)


def size_bins(labels: list[str], ap: list[float], recall: list[float]) -> bytes:
    """AP and recall per box-size bin, side by side; bins without boxes are marked, not drawn."""
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 1.5), 3.6))
    for offset, values, name, colour in ((-0.2, ap, "AP", "tab:blue"), (0.2, recall, "recall", "tab:orange")):
        present = [i for i, v in enumerate(values) if v >= 0]
        ax.bar(x[present] + offset, [values[i] for i in present], 0.4, label=name, color=colour)
    for i in range(len(labels)):
        if ap[i] < 0 and recall[i] < 0:
            ax.text(i, 0.02, "no boxes", ha="center", fontsize=7, color="grey", rotation=90)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("box size (share of the image)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def confusion(labels: list[str], matrix: list[list[int]]) -> bytes:
    """Heatmap, ground truth down, predictions across; counts written in the cells.

    Colour is log-scaled so one big diagonal does not wash out the off-diagonal mistakes."""
    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    size = max(4.0, 0.45 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(np.log1p(counts), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if len(labels) <= 30:  # past that the numbers overlap; the HTML table has them
        high = counts.max() if counts.size else 0
        for (row, column), value in np.ndenumerate(counts):
            if value:
                ax.text(column, row, f"{int(value)}", ha="center", va="center", fontsize=7,
                        color="white" if value > high / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="log(1 + count)")
    fig.tight_layout()
    return _png(fig)


def training(history: list[dict]) -> bytes:
    """Losses and val mAP@0.5 against epoch."""
    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in LOSS_KEYS:
        points = [(row["epoch"], row[key]) for row in history if _number(row.get(key)) is not None]
        if points:
            loss_ax.plot(*zip(*points), marker="o" if key == "val_loss" else None, markersize=3, label=key)
    loss_ax.set_title("loss")
    loss_ax.legend(fontsize=8)
    maps = [(row["epoch"], row["map50"]) for row in history if _number(row.get("map50")) is not None]
    if maps:
        map_ax.plot(*zip(*maps), marker="o", color="tab:green")
    map_ax.set_title("val mAP@0.5")
    map_ax.set_ylim(0, 1)
    for ax in (loss_ax, map_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _number(value) -> float | None:
    """A finite float, or None (CSV leaves empty cells for epochs without validation)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
