"""``curate formats``."""

from __future__ import annotations


def formats_command() -> None:
    """The annotation formats `curate import` reads, in the order auto-detection tries them."""
    from rich.markup import escape

    from curate.cli.render import console
    from curate.formats import DETECTION_ORDER, READERS

    for name in DETECTION_ORDER:
        reader = READERS[name]
        summary = escape((reader.__doc__ or "").strip().splitlines()[0].replace("``", ""))
        console.print(f"[bold]{name:<18}[/] {summary}  [dim](coordinates: {reader.CONVENTION.value})[/]",
                      highlight=False)
