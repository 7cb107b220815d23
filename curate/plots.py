"""PNG plots (matplotlib, Agg backend: works with no display)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_BARS = 60  # classes drawn in a histogram; the rest are summed into one "other" bar
SCATTER_CLASSES = 10  # classes given their own colour in the box-size scatter
DPI = 110


def class_histogram(classes: dict[str, dict[str, int]], path: Path, *, title: str) -> Path:
    names = list(classes)[:MAX_BARS]
    counts = [classes[n]["instances"] for n in names]
    images = [classes[n]["images"] for n in names]
    rest = sum(c["instances"] for n, c in classes.items() if n not in names)
    if rest:
        names.append(f"{len(classes) - MAX_BARS} others")
        counts.append(rest)
        images.append(0)
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(names) + 2), 4.5))
    x = np.arange(len(names))
    ax.bar(x - 0.2, counts, 0.4, label="boxes")
    ax.bar(x + 0.2, images, 0.4, label="images")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def box_size_scatter(width: np.ndarray, height: np.ndarray, labels: list[str], path: Path, *,
                     title: str, anchors: list[tuple[float, float]] | None = None) -> Path:
    """Ground-truth box width against height, log-log, coloured by the most frequent classes."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    label_array = np.array(labels, dtype=object)
    top = [name for name, _ in Counter(labels).most_common(SCATTER_CLASSES)]
    for name in top:
        mask = label_array == name
        ax.scatter(width[mask], height[mask], s=6, alpha=0.5, label=name)
    other = ~np.isin(label_array, top) if len(label_array) else np.zeros(0, bool)
    if other.any():
        ax.scatter(width[other], height[other], s=6, alpha=0.3, c="grey", label="other classes")
    if anchors:
        aw, ah = zip(*anchors)
        ax.scatter(aw, ah, marker="x", s=60, c="black", label="anchors")
    if len(width):
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("box width (px)")
    ax.set_ylabel("box height (px)")
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
