"""Entry point. Commands import their heavy dependencies inside the function, so ``curate --help``
imports neither fiftyone nor torch."""

from __future__ import annotations

import logging
import os
import sys

import typer

from curate import __version__
from curate.cli import (anchors_cmd, balance_cmd, clean_cmd, demo_cmd, doctor_cmd, evaluate_cmd, export_cmd,
                        formats_cmd, import_cmd, info_cmd, labels_cmd, negatives_cmd, predict_cmd, report_cmd,
                        review_cmd, run_cmd, sweep_cmd, synth_cmd, train_cmd)
from curate.errors import CurateError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="From messy box annotations to a trained, evaluated SSD detector.")
app.command("import")(import_cmd.import_command)
app.command("formats")(formats_cmd.formats_command)
app.command("labels")(labels_cmd.labels_command)
app.command("clean")(clean_cmd.clean_command)
app.command("balance")(balance_cmd.balance_command)
app.command("anchors")(anchors_cmd.anchors_command)
app.command("train")(train_cmd.train_command)
app.command("evaluate")(evaluate_cmd.evaluate_command)
app.command("review")(review_cmd.review_command)
app.command("report")(report_cmd.report_command)
app.command("negatives")(negatives_cmd.negatives_command)
app.command("run")(run_cmd.run_command)
app.command("sweep")(sweep_cmd.sweep_command)
app.command("export")(export_cmd.export_command)
app.command("predict")(predict_cmd.predict_command)
app.command("info")(info_cmd.info_command)
app.command("synth")(synth_cmd.synth_command)
app.command("doctor")(doctor_cmd.doctor_command)
app.command("demo")(demo_cmd.demo_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what each stage does."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # FiftyOne logs to stdout at INFO by default, which would corrupt `--json` output; read at its import.
    os.environ.setdefault("FIFTYONE_LOGGING_LEVEL", logging.getLevelName(level))


def main() -> None:
    from trainer.errors import TrainerError  # torch-free

    try:
        app()
    except (CurateError, TrainerError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
