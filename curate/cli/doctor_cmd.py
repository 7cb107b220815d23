"""``curate doctor``."""

from __future__ import annotations

import typer


def doctor_command() -> None:
    """Versions, database in use and whether it answers, torch/torchvision match, GPU; a fix per problem."""
    from curate.cli.render import console
    from curate.doctor import run_checks

    problems = 0
    for check in run_checks():
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            problems += 1
            console.print(f"      fix: {check.fix}", highlight=False)
    if problems:
        raise typer.Exit(1)
