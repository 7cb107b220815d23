"""``curate sweep RECIPE --set key=v1,v2``."""

from __future__ import annotations

import typer


def sweep_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
