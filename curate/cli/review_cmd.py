"""``curate review DATASET``: the FiftyOne App on the failure views."""

from __future__ import annotations

import typer


def review_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
