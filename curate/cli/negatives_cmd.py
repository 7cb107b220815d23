"""``curate negatives --mine --model RUN``: hard-negative mining."""

from __future__ import annotations

import typer


def negatives_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
