"""``curate report RUN``: a static HTML report."""

from __future__ import annotations

import typer


def report_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
