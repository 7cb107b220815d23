"""Human-readable tables for the CLI (rich). Library code returns data; this prints it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

ERRORS_SHOWN = 20  # lines of the error list printed; --json and the dataset keep all of them

console = Console()


def import_report(report) -> None:
    console.print(f"[bold]{report.dataset}[/]: imported {report.root} as [bold]{report.format}[/] "
                  f"({report.format_reason}); pixel convention {report.pixel_convention}")
    if report.reader_stats:
        console.print("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.reader_stats.items()))
    table = Table(show_header=False, box=None, pad_edge=False)
    rows = [("samples seen", report.samples_seen), ("added", report.added), ("updated", report.updated),
            ("unchanged", report.unchanged), ("labeled images", report.labeled_images),
            ("unlabeled images (no annotation file)", report.unlabeled_images), ("boxes", report.boxes),
            ("classes", len(report.classes)), ("missing images", report.missing_images),
            ("unreadable images", report.unreadable_images),
            ("samples with errors", report.samples_with_errors),
            ("files skipped", report.skipped_files),
            ("samples of this source no longer on disk (kept)", report.stale),
            ("time", f"{report.seconds:.1f} s ({report.database_seconds:.1f} s database start-up, "
                     f"then {report.images_per_second:,.0f} images/s)")]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    if report.errors:
        console.print(f"[yellow]{len(report.errors)} problems[/] ({_kinds(report.error_kinds())}); "
                      "each is on the dataset's report and in --json:")
        for error in report.errors[:ERRORS_SHOWN]:
            where = f"{error['path']}: {error['field']}" if error["field"] else error["path"]
            console.print(f"  {error['kind']}: {where}: {error['detail']}  [dim]fix: {error['fix']}[/]",
                          highlight=False, soft_wrap=True)
        if len(report.errors) > ERRORS_SHOWN:
            console.print(f"  ... and {len(report.errors) - ERRORS_SHOWN} more")


def import_summary(summary) -> None:
    for report in summary.reports:
        import_report(report)
    if len(summary.reports) > 1:
        totals = summary.totals()
        console.print(f"[bold]{summary.dataset}[/]: {len(summary.reports)} sources, "
                      + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()))
    if summary.duplicates:
        d = summary.duplicates
        console.print(f"duplicates: {d['exact_groups']} groups of identical files "
                      f"({d['samples_in_exact_groups']} samples, {d['cross_source_exact_groups']} across "
                      f"sources); {d['near_groups']} near-duplicate groups ({d['samples_in_near_groups']} "
                      f"samples, {d['cross_source_near_groups']} across sources). Nothing was removed; "
                      f"see the fields exact_duplicate_group / near_duplicate_group.")


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in kinds.items())
