"""Tables and pictures for ``curate balance``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table

from curate.cli.render import console

CURVE_FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def report(r, files) -> None:
    if r.split:
        table = Table("split", "images", "instances", title="split (stratified; duplicate groups together)")
        for name, row in r.split["table"].items():
            table.add_row(name, str(row["images"]), str(row["instances"]))
        console.print(table)
        console.print(f"{r.split['changed']} samples got a new split tag")
        empty = [name for name, row in r.split["table"].items() if row["instances"] == 0]
        if empty and not r.split["resplit"]:
            console.print(f"[yellow]splits {', '.join(empty)} hold no boxes[/]: the existing split tags were "
                          "kept; `--resplit` re-splits every sample")
    if r.selection:
        s = r.selection
        console.print(f"selection ({s['images']} images, {s['instances']} boxes; tag and saved view "
                      f"'balanced'): KL(target||kept) = {s['kl']:.4f}; lower bound {s['bound']:.4f}; "
                      f"random {s['random_kl']:.4f}; capping {s['capped_kl']:.4f}")
    if r.weights:
        w = r.weights
        console.print(f"sample_weight written: KL {w['kl_weighted']:.4f} (uniform sampling "
                      f"{w['kl_uniform']:.4f}, LVIS repeat factors {w['kl_repeat_factors']:.4f})")
    if r.negatives:
        n = r.negatives
        console.print(f"negatives: {n['selected']} chosen for {n['positives']} positive images (ratio "
                      f"{n['ratio']:g}:1; {n['candidates']} candidates)"
                      + (f"; [yellow]{n['short_by']} short[/]: add background images with --negatives-from DIR"
                         if n["short_by"] else ""))
    for path in files:
        console.print(f"plot: {path}")


def plots(r, table, target, out_dir: Path, seed: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [_distribution_bars(plt, r, table, target, out_dir / "classes.png")]
    if r.selection:
        files.append(_kl_curve(plt, table, target, r.selection["budget_unit"], seed, out_dir / "kl_curve.png"))
    return files


def _distribution_bars(plt, r, table, target, path: Path) -> Path:
    before = table.counts.sum(axis=0) / max(table.counts.sum(), 1)
    x = np.arange(len(table.classes))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(x) + 2), 4))
    bars = [("before", before), ("target", target)]
    if r.selection:
        kept = np.array([r.selection["kept_per_class"][c] for c in table.classes], float)
        bars.insert(1, ("kept", kept / max(kept.sum(), 1)))
    width = 0.8 / len(bars)
    for k, (name, values) in enumerate(bars):
        ax.bar(x + (k - (len(bars) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, table.classes, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of boxes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _kl_curve(plt, table, target, unit: str, seed: int, path: Path) -> Path:
    from curate.balance_compare import kl_curve

    curve = kl_curve(table.counts, target, CURVE_FRACTIONS, budget_unit=unit, seed=seed)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("ours", "random", "capped", "bound"):
        ax.plot(curve.fractions, getattr(curve, name), marker="o", label=name)
    ax.set_xlabel(f"fraction of {unit} kept")
    ax.set_ylabel("KL(target || kept)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
