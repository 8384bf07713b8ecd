"""``batchyard jobs ...``: list, inspect and control jobs."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from batchyard.cli import humanize, render
from batchyard.cli.common import AppOption, JsonOption, hint_command, open_app, out, print_json
from batchyard.lifecycle import Action, JobStatus, next_job_status
from batchyard.service import JobView
from batchyard.store import Store
from batchyard.store.records import EventRecord

EVENTS_SHOWN = 10
EVENTS_IN_JSON = 50
EVENT_PAGE = 500

jobs_app = typer.Typer(
    name="jobs", no_args_is_help=True, rich_markup_mode="rich",
    help="List, inspect and control jobs: [cyan]list, show, pause, resume, cancel, retry, download, delete[/].",
)

JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (from submit or jobs list).",
                                      show_default=False)]


def last_events(store: Store, job_id: str, n: int) -> list[EventRecord]:
    """The newest ``n`` events of a job, oldest first."""
    newest: collections.deque[EventRecord] = collections.deque(maxlen=n)
    after_id = 0
    while True:
        page = store.list_events(job_id, after_id=after_id, limit=EVENT_PAGE)
        newest.extend(page)
        if len(page) < EVENT_PAGE:
            return list(newest)
        after_id = page[-1].id


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[list[JobStatus] | None, typer.Option(
        "--status", "-s", metavar="STATUS", case_sensitive=False,
        help="Only jobs in this status (repeatable): queued, running, paused, finalizing, completed, failed, "
             "cancelling, cancelled, expired.")] = None,
    handler: Annotated[str | None, typer.Option(
        "--handler", "-H", metavar="NAME", help="Only jobs of this handler.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", min=1, max=1000, metavar="N", help="At most this many jobs.")] = 20,
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """List jobs, newest first, with their progress.

    Filters combine: [cyan]--status[/] may be repeated, and [cyan]--handler[/] narrows further.

    [bold]Examples[/]

      [cyan]batchyard jobs list[/]

      [cyan]batchyard jobs list --status running --status paused --handler thumbnail[/]

      [cyan]batchyard jobs list --json | jq -r '.[].id'[/]
    """
    with open_app(ctx, app) as by:
        views = by.service.list_jobs(statuses=[s.value for s in status or []], handler=handler, limit=limit)
    if json_output:
        print_json([v.to_dict() for v in views])
    elif not views:
        filtered = " matching those filters" if status or handler else " yet"
        out.print(f"No jobs{filtered}. Submit one: [cyan]batchyard submit items.jsonl --handler echo --wait[/]")
    else:
        out.print(render.jobs_table(views, time.time(), compact=out.width < render.WIDE_TABLE_COLUMNS))


@jobs_app.command("show")
def show(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False, app: AppOption = None) -> None:
    """Show one job: progress, counts, timings, settings, error, result files and its latest events.

    With [cyan]--json[/] the job comes with its last 50 events.

    [bold]Examples[/]

      [cyan]batchyard jobs show job_0123abcd[/]

      [cyan]batchyard jobs show job_0123abcd --json | jq .counts[/]
    """
    with open_app(ctx, app) as by:
        view = by.service.get(job_id)
        events = last_events(by.store, job_id, EVENTS_IN_JSON if json_output else EVENTS_SHOWN)
        files = render.result_files(view, by.storage)
    if json_output:
        print_json({**view.to_dict(), "events": [render.event_to_dict(e) for e in events]})
    else:
        out.print(render.job_details(view, events, files, time.time()))


def _report_move(view: JobView, done: str, json_output: bool) -> None:
    if json_output:
        print_json(view.to_dict())
    else:
        out.print(Text.assemble(("✔ ", "green"), f"{done}: ", render.job_summary_line(view.job)), soft_wrap=True)


@jobs_app.command("pause")
def pause(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False, app: AppOption = None) -> None:
    """Pause a queued or running job: no new items start; items in flight finish.

    [bold]Example[/]   [cyan]batchyard jobs pause job_0123abcd[/]
    """
    with open_app(ctx, app) as by:
        view = by.service.pause(job_id, actor="cli")
    _report_move(view, "Paused", json_output)


@jobs_app.command("resume")
def resume(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False, app: AppOption = None) -> None:
    """Resume a paused job.

    [bold]Example[/]   [cyan]batchyard jobs resume job_0123abcd[/]
    """
    with open_app(ctx, app) as by:
        view = by.service.resume(job_id, actor="cli")
    _report_move(view, "Resumed", json_output)


@jobs_app.command("cancel")
def cancel(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False, app: AppOption = None) -> None:
    """Cancel a job: queued items are cancelled at once, items in flight are told to stop.

    [bold]Example[/]   [cyan]batchyard jobs cancel job_0123abcd[/]
    """
    with open_app(ctx, app) as by:
        view = by.service.cancel(job_id, actor="cli")
    _report_move(view, "Cancelled", json_output)


@jobs_app.command("retry")
def retry(ctx: typer.Context, job_id: JobId, json_output: JsonOption = False, app: AppOption = None) -> None:
    """Queue a job's failed items again, with fresh attempts.

    [bold]Example[/]   [cyan]batchyard jobs retry job_0123abcd[/]
    """
    with open_app(ctx, app) as by:
        view, n = by.service.retry_failed(job_id, actor="cli")
        has_worker = by.service.has_live_worker_for(view.job.handler)
    if json_output:
        print_json({"retried_items": n, "job": view.to_dict()})
        return
    items = f"{humanize.count(n)} failed item{'s' if n != 1 else ''}"
    out.print(Text.assemble(("✔ ", "green"), f"Queued {items} again: ", render.job_summary_line(view.job)),
              soft_wrap=True)
    if not has_worker:
        out.print(f"  [yellow]No worker is running for {escape(repr(view.job.handler))}[/]: start one with "
                  f"[cyan]{hint_command(ctx, app, 'worker')}[/]", soft_wrap=True)


@jobs_app.command("delete")
def delete(
    ctx: typer.Context,
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")] = False,
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """Delete a finished job, its items and its result files, for good.

    Only completed, failed, cancelled or expired jobs can be deleted; it asks first unless [cyan]--yes[/].

    [bold]Examples[/]

      [cyan]batchyard jobs delete job_0123abcd[/]

      [cyan]batchyard jobs delete job_0123abcd --yes --json[/]
    """
    with open_app(ctx, app) as by:
        job = by.service.get(job_id).job
        next_job_status(job.status, Action.DELETE)  # refuse before asking, not after
        if not yes:
            typer.confirm(f"Delete job {job.id} ({job.status}, {job.total:,} items) and its result files?",
                          abort=True, err=True)
        by.service.delete(job_id, actor="cli")
    if json_output:
        print_json({"deleted": job_id})
    else:
        out.print(f"[green]✔[/] Deleted [cyan]{job_id}[/]")


@jobs_app.command("download")
def download(
    ctx: typer.Context,
    job_id: JobId,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR", file_okay=False,
        help="Where to write the files (created if missing). Default: ./JOB_ID")] = None,
    json_output: JsonOption = False,
    app: AppOption = None,
) -> None:
    """Download a finished job's result files: results.jsonl, errors.jsonl, results.csv, artifacts.zip.

    Each file is written only if the job has it (errors.jsonl is empty when nothing failed; artifacts.zip
    exists when handlers saved artifacts).

    [bold]Examples[/]

      [cyan]batchyard jobs download job_0123abcd -o out/[/]

      [cyan]batchyard jobs download job_0123abcd -o out/ --json | jq -r '.files[].path'[/]
    """
    directory = output or Path(job_id)
    with open_app(ctx, app) as by:
        job = by.job(job_id)
        paths = job.download(directory)
        rows = {f.name: f.rows for f in render.result_files(job.refresh(), by.storage)}
    files = [render.ResultFile(p.name, p, p.stat().st_size, rows.get(p.name)) for p in paths]
    if json_output:
        print_json({"job_id": job_id, "directory": str(directory),
                    "files": [{"name": f.name, "path": str(f.path), "bytes": f.bytes, "rows": f.rows}
                              for f in files]})
        return
    out.print(f"[green]✔[/] Wrote {len(files)} file{'s' if len(files) != 1 else ''} of [cyan]{job_id}[/] "
              f"to {directory}")
    out.print(render.files_table(files))
