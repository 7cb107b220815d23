"""``curate export RUN --onnx``."""

from __future__ import annotations

import typer


def export_command() -> None:
    """(being built)"""
    raise typer.Exit(2)
