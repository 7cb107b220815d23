"""``curate run RECIPE``: every stage, skipping the unchanged ones."""

from __future__ import annotations

import typer


def run_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
