"""The comparison of a sweep's variants: one row per variant from its run folder (eval.json,
metrics.jsonl, pipeline.json), written as ``sweep.md``, ``sweep.csv``, ``sweep.json`` and two PNGs
(``sweep_map.png``: VOC mAP@0.5 per variant; ``sweep_curves.png``: validation mAP@0.5 against the epoch).

Rows are read from the files, so a variant skipped because it had finished reports its recorded numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from curate.pipeline import MODEL_STAGES
from curate.pipeline_stages import metric_rows, training_summary
from curate.pipeline_state import PipelineState

COLUMNS = {  # row key -> header
    "voc_map50": "VOC mAP@0.5", "coco_ap": "COCO AP", "ar100": "AR100",
    "eval_minus_train_loss": "eval-train loss", "train_images_per_second": "train img/s",
    "epochs": "epochs", "wall_seconds": "wall s",
}


def variant_row(name: str, settings: dict, run_dir: Path) -> dict:
    evaluation = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").is_file() else {}
    trained = training_summary(run_dir)
    state = PipelineState.load(run_dir)
    coco = evaluation.get("coco", {})
    return {"variant": name, "settings": settings, "run": str(run_dir),
            "voc_map50": evaluation.get("voc_map50_all_point"), "coco_ap": coco.get("AP"),
            "ar100": coco.get("AR100"), "eval_minus_train_loss": trained["eval_minus_train_loss"],
            "train_images_per_second": trained["images_per_second"], "epochs": trained["epochs"],
            "wall_seconds": round(sum(state.record(s).get("seconds", 0.0) for s in MODEL_STAGES), 1)}


def best_index(rows: list[dict]) -> int | None:
    scored = [(r["voc_map50"], i) for i, r in enumerate(rows) if r["voc_map50"] is not None]
    return max(scored)[1] if scored else None


ONE_DECIMAL = ("train_images_per_second", "wall_seconds")


def _cell(value, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if column in ONE_DECIMAL else f"{value:.4g}"
    return str(value)


def table_rows(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells (strings), the best variant marked ``*``."""
    best = best_index(rows)
    header = ["best", "variant", *keys, *COLUMNS.values()]
    cells = [["*" if i == best else "", r["variant"], *(_cell(r["settings"].get(k)) for k in keys),
              *(_cell(r[c], c) for c in COLUMNS)] for i, r in enumerate(rows)]
    return header, cells


def markdown_table(rows: list[dict], keys: list[str]) -> str:
    header, cells = table_rows(rows, keys)
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *cells]
    return "\n".join("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines) + "\n"


def write_comparison(rows: list[dict], keys: list[str], out: Path) -> list[Path]:
    files = [out / "sweep.md", out / "sweep.csv", out / "sweep.json"]
    files[0].write_text(markdown_table(rows, keys))
    with files[1].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", *keys, *COLUMNS])
        writer.writerows([r["variant"], *(r["settings"].get(k) for k in keys), *(r[c] for c in COLUMNS)]
                         for r in rows)
    best = best_index(rows)
    files[2].write_text(json.dumps({"keys": keys, "best": rows[best]["variant"] if best is not None else None,
                                    "variants": rows}, indent=2, default=str))
    return files + _plots(rows, out)


def _plots(rows: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows)), 3.5))
    ax.bar(range(len(rows)), [r["voc_map50"] or 0.0 for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("VOC mAP@0.5 (evaluated split)")
    ax.set_title("mAP per variant")
    fig.tight_layout()
    fig.savefig(out / "sweep_map.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        points = [(m["epoch"], m["map50"]) for m in metric_rows(Path(row["run"])) if "map50" in m]
        if points:
            ax.plot(*zip(*points), marker="o", label=row["variant"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mAP@0.5")
    ax.set_title("validation mAP per variant")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sweep_curves.png", dpi=110)
    plt.close(fig)
    return [out / "sweep_map.png", out / "sweep_curves.png"]
