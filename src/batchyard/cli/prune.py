"""``batchyard prune``: delete finished jobs past an age (and expired uploads), or show what that would remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from batchyard.cli.common import AppOption, JsonOption, err, open_app, out, print_json
from batchyard.core import humanize
from batchyard.core.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from batchyard.services.retention import PruneReport, RetentionService


def _age(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Finished jobs that finished longer ago than this go: 30d, 12h, 90m, 2w. "
            "Default: BATCHYARD_JOB_RETENTION_DAYS (unset: jobs are kept, only expired uploads go).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", metavar="", help="Only count what would go; delete nothing.")
    ] = False,
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """Delete finished jobs older than an age, with their items, timeline, result files and artifacts; and
    uploaded files past their expiry.

    Only completed, failed, cancelled and expired jobs go, whoever owns them; queued, running and paused jobs
    stay however old they are. Rows are deleted in small chunks (BATCHYARD_PRUNE_CHUNK_ROWS per transaction),
    so workers and the API keep going meanwhile. Maintenance (in every [cyan]serve[/] and [cyan]worker[/]) does
    the same by itself when BATCHYARD_JOB_RETENTION_DAYS is set.

    [bold]Examples[/]

      [cyan]batchyard prune --older-than 30d --dry-run[/]      [dim]# jobs, items, files and bytes it would free[/]

      [cyan]batchyard prune --older-than 30d[/]

      [cyan]batchyard --db postgresql://batch@db/batch prune --older-than 90d --json[/]
    """
    age = _age(older_than)
    with open_app(ctx, app) as by:
        retention = by.retention
        if age is None:
            age = retention.default_age_seconds
        if age is None and not json_output:
            err.print(
                "[yellow]No --older-than and BATCHYARD_JOB_RETENTION_DAYS is not set: jobs are kept; "
                "only uploads past their expiry go.[/]",
                soft_wrap=True,
            )
        if dry_run:
            report = retention.plan(age)
        elif json_output or age is None:
            report = retention.prune(age)
        else:
            report = _prune_with_bar(retention, age)
    if json_output:
        print_json(report.to_dict())
        return
    _print_report(report)


def _prune_with_bar(retention: RetentionService, age: float) -> PruneReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = retention.jobs_to_prune(age)
    with Progress(
        TextColumn("Pruning jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total < 2,  # nothing worth a bar
    ) as bar:
        task = bar.add_task("prune", total=total)

        def advance(done: int, of: int) -> None:
            bar.update(task, completed=done, total=of)

        return retention.prune(age, progress=advance)


def _print_report(report: PruneReport) -> None:
    from rich.table import Table

    if report.older_than_seconds is None:
        scope = "Uploads past their expiry (jobs are kept: no age given)"
    else:
        scope = (
            f"Jobs finished more than {format_duration(report.older_than_seconds)} ago, and uploads past their expiry"
        )
    out.print(f"{scope}:", soft_wrap=True)
    table = Table(title="Would remove" if report.dry_run else "Removed", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("jobs", humanize.count(report.jobs))
    table.add_row("items", humanize.count(report.items))
    table.add_row("expired uploads", humanize.count(report.uploads))
    table.add_row("files", humanize.count(report.files))
    table.add_row("bytes", f"{humanize.size(report.bytes)} ({report.bytes:,})")
    out.print(table)
    if report.dry_run and (report.jobs or report.uploads):
        out.print("[dim]Run it again without --dry-run to delete them.[/]")
