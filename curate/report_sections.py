"""HTML fragments of the report: tables, embedded images, galleries. Every string from data is escaped.

Numbers are shown with 3 decimals and carried raw in ``data-value`` so a script (or a test) can read
them back exactly; ``-1`` / ``None`` (eval.json's "nothing to measure") is shown as an em dash.
"""

from __future__ import annotations

import base64
import html
import math
import os

DECIMALS = 3
NOTHING = "\u2014"  # em dash: no boxes to measure


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """3 decimals for a float, digits for an int, an em dash for a missing measure."""
    if value is None or isinstance(value, bool):
        return NOTHING if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return NOTHING if value < 0 or not math.isfinite(value) else f"{value:.{DECIMALS}f}"
    return esc(value)


def cell(value, *, header: bool = False) -> str:
    tag = "th" if header else "td"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<{tag} class="num" data-value="{esc(value)}">{fmt(value)}</{tag}>'
    return f"<{tag}>{esc(value)}</{tag}>"


def table(table_id: str, headers: list[str], rows: list[list], *, caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v, header=i == 0 and isinstance(v, str)) for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table id="{esc(table_id)}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def image(data: bytes, *, mime: str, alt: str, image_id: str = "", css: str = "") -> str:
    """An <img> carrying its picture as a data: URI, so the report is one file that opens anywhere."""
    encoded = base64.b64encode(data).decode("ascii")
    attributes = f' id="{esc(image_id)}"' if image_id else ""
    attributes += f' class="{esc(css)}"' if css else ""
    return f'<img{attributes} alt="{esc(alt)}" src="data:{mime};base64,{encoded}">'


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def note(text: str, *, kind: str = "note") -> str:
    return f'<p class="{esc(kind)}">{esc(text)}</p>'


def gallery(gallery_id: str, tiles, *, empty: str) -> str:
    """Figures of failure tiles (report_gallery.Tile), captioned with file, label, score and IoU."""
    if not tiles:
        return note(empty)
    figures = []
    for tile in tiles:
        failure = tile.failure
        box = failure.box
        what = "false positive" if failure.kind == "fp" else "missed"
        facts = [f"{what}: {box.label}"]
        if box.score is not None:
            facts.append(f"score {box.score:.{DECIMALS}f}")
        if box.iou is not None:
            facts.append(f"IoU {box.iou:.{DECIMALS}f}")
        if failure.nearest is not None:
            near = failure.nearest
            score = f" {near.score:.{DECIMALS}f}" if near.score is not None else ""  # another tool's boxes may
            facts.append(f"nearest prediction {near.label}{score} at IoU {near.iou:.{DECIMALS}f}")  # have none
        figures.append(
            f'<figure class="tile" data-kind="{esc(failure.kind)}">'
            + image(tile.jpeg, mime="image/jpeg", alt=f"{what} {box.label} in {os.path.basename(failure.filepath)}")
            + f'<figcaption><span class="facts">{esc(", ".join(facts))}</span><br>'
            f'<span class="path" title="{esc(failure.filepath)}">{esc(os.path.basename(failure.filepath))}</span>'
            "</figcaption></figure>")
    return f'<div class="gallery" id="{esc(gallery_id)}">{"".join(figures)}</div>'


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:16px 28px}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;opacity:.9}nav{padding:8px 28px;background:#e9edf3;font-size:13px}
nav a{margin-right:14px;color:#1d3557}main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:17px;margin:4px 0 10px}table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
caption{min-width:16em}
th,td{border:1px solid #dde2e8;padding:3px 9px;text-align:left}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums}thead th{background:#eef1f5}caption{text-align:left;font-weight:600;padding:4px 0}
img{max-width:100%}.note{color:#555;font-size:13px}.warning{color:#8a4b00;background:#fff4e0;padding:6px 10px}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.tile{margin:0;width:480px}
.tile img{display:block;width:480px;height:240px}.tile figcaption{font-size:12px;padding:3px 0}
.path{color:#666}.legend span{display:inline-block;padding:1px 8px;margin-right:8px;font-size:12px;color:#000}
.cards{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start}.card{background:#eef1f5;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}
"""
