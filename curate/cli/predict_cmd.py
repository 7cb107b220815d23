"""``curate predict RUN IMAGES/``: pre-annotation."""

from __future__ import annotations

import typer


def predict_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
