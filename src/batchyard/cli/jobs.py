"""``batchyard jobs ...``: list, inspect and control jobs."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from batchyard.cli import humanize, render
from batchyard.cli.common import (
    AppOption,
    JsonOption,
    KeyOption,
    UrlOption,
    event_from_json,
    hint_command,
    open_app,
    open_client,
    out,
    print_json,
    remote_hint,
    view_from_json,
)
from batchyard.client import Client
from batchyard.core.lifecycle import Action, JobStatus, next_job_status
from batchyard.core.records import EventRecord
from batchyard.data.results import RESULT_FILE_NAMES
from batchyard.errors import NotReady
from batchyard.services.jobs import JobView
from batchyard.store import Store

EVENTS_SHOWN = 10
EVENTS_IN_JSON = 50
EVENT_PAGE = 500

jobs_app = typer.Typer(
    name="jobs",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="List, inspect and control jobs: [cyan]list, show, pause, resume, cancel, retry, download, delete[/]. "
    "Each works on the local database, or on a server with [cyan]--url[/] and [cyan]--key[/].",
)

JobId = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="The job's id (from submit or jobs list).", show_default=False)
]


def last_events(store: Store, job_id: str, n: int) -> list[EventRecord]:
    """The newest ``n`` events of a job, oldest first."""
    newest: collections.deque[EventRecord] = collections.deque(maxlen=n)
    after_id = 0
    while True:
        page = store.jobs.list_events(job_id, after_id=after_id, limit=EVENT_PAGE)
        newest.extend(page)
        if len(page) < EVENT_PAGE:
            return list(newest)
        after_id = page[-1].id


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[JobStatus] | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            case_sensitive=False,
            help="Only jobs in this status (repeatable): queued, running, paused, finalizing, completed, failed, "
            "cancelling, cancelled, expired.",
        ),
    ] = None,
    handler: Annotated[
        str | None, typer.Option("--handler", "-H", metavar="NAME", help="Only jobs of this handler.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, metavar="N", help="At most this many jobs.")
    ] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """List jobs, newest first, with their progress.

    Filters combine: [cyan]--status[/] may be repeated, and [cyan]--handler[/] narrows further.

    [bold]Examples[/]

      [cyan]batchyard jobs list[/]

      [cyan]batchyard jobs list --status running --status paused --handler thumbnail[/]

      [cyan]batchyard jobs list --json | jq -r '.[].id'[/]

      [cyan]batchyard jobs list --url http://127.0.0.1:8000 --status failed[/]   [dim]# key in BATCHYARD_API_KEY[/]
    """
    statuses = [s.value for s in status or []]
    if url:
        with open_client(url, key, app) as client:
            data = list(client.iter_jobs(limit=limit, statuses=statuses, handler=handler))
        views = [view_from_json(j) for j in data]
    else:
        with open_app(ctx, app) as by:
            by.service.rescue_stale()  # with no worker or server running, nobody else hands stopped leases back
            views = by.service.list_jobs(statuses=statuses, handler=handler, limit=limit)
        data = [v.to_dict() for v in views]
    if json_output:
        print_json(data)
    elif not views:
        filtered = " matching those filters" if status or handler else " yet"
        out.print(f"No jobs{filtered}. Submit one: [cyan]batchyard submit items.jsonl --handler echo --wait[/]")
    else:
        out.print(render.jobs_table(views, time.time(), compact=out.width < render.WIDE_TABLE_COLUMNS))


@jobs_app.command("show")
def show(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Show one job: progress, counts, timings, settings, error, result files and its latest events.

    With [cyan]--json[/] the job comes with its last 50 events.

    [bold]Examples[/]

      [cyan]batchyard jobs show job_0123abcd[/]

      [cyan]batchyard jobs show job_0123abcd --json | jq .counts[/]
    """
    n_events = EVENTS_IN_JSON if json_output else EVENTS_SHOWN
    if url:
        with open_client(url, key, app) as client:
            _show_remote(ctx, client, job_id, n_events, json_output)
        return
    with open_app(ctx, app) as by:
        by.service.rescue_stale()
        view = by.service.get(job_id)
        events = last_events(by.store, job_id, n_events)
        files = render.result_files(view, by.storage)
    if json_output:
        print_json({**view.to_dict(), "events": [render.event_to_dict(e) for e in events]})
    else:
        out.print(render.job_details(view, events, files, time.time()))


def _show_remote(ctx: typer.Context, client: Client, job_id: str, n_events: int, json_output: bool) -> None:
    data = client.get_job(job_id)
    events = client.last_events(job_id, n_events)
    if json_output:
        print_json({**data, "events": events})
        return
    view = view_from_json(data)
    out.print(render.job_details(view, [event_from_json(job_id, e) for e in events], [], time.time()))
    files = _remote_result_files(data)
    if files:
        out.print(Text("Result files", style="bold"))
        out.print(render.files_table(files, with_paths=False))
        out.print(f"Download them: [cyan]{remote_hint(ctx, 'jobs download', job_id, '-o', 'DIR')}[/]", soft_wrap=True)


def _remote_result_files(data: dict[str, Any], directory: Path = Path()) -> list[render.ResultFile]:
    files = data.get("result_files") or {}
    return [
        render.ResultFile(name, directory / name, files[name].get("bytes"), files[name].get("rows"))
        for name in RESULT_FILE_NAMES
        if name in files
    ]


def _report_move(view: JobView, done: str, json_output: bool, data: dict[str, Any] | None = None) -> None:
    if json_output:
        print_json(data if data is not None else view.to_dict())
    else:
        out.print(Text.assemble(("✔ ", "green"), f"{done}: ", render.job_summary_line(view.job)), soft_wrap=True)


def _move_remote(
    url: str, key: str | None, app_ref: str | None, job_id: str, action: str, done: str, json_output: bool
) -> None:
    with open_client(url, key, app_ref) as client:
        data = {"pause": client.pause_job, "resume": client.resume_job, "cancel": client.cancel_job}[action](job_id)
    _report_move(view_from_json(data), done, json_output, data)


def _move(
    ctx: typer.Context,
    job_id: str,
    action: str,
    done: str,
    json_output: bool,
    url: str | None,
    key: str | None,
    app: str | None,
) -> None:
    """Pause, resume or cancel, on the local database or (with ``url``) over the API."""
    if url:
        _move_remote(url, key, app, job_id, action, done, json_output)
        return
    with open_app(ctx, app) as by:
        moves = {"pause": by.service.pause, "resume": by.service.resume, "cancel": by.service.cancel}
        view = moves[action](job_id, actor="cli")
    _report_move(view, done, json_output)


@jobs_app.command("pause")
def pause(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Pause a queued or running job: no new items start; items in flight finish.

    [bold]Example[/]   [cyan]batchyard jobs pause job_0123abcd[/]
    """
    _move(ctx, job_id, "pause", "Paused", json_output, url, key, app)


@jobs_app.command("resume")
def resume(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Resume a paused job.

    [bold]Example[/]   [cyan]batchyard jobs resume job_0123abcd[/]
    """
    _move(ctx, job_id, "resume", "Resumed", json_output, url, key, app)


@jobs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Cancel a job: queued items are cancelled at once, items in flight are told to stop.

    [bold]Example[/]   [cyan]batchyard jobs cancel job_0123abcd[/]
    """
    _move(ctx, job_id, "cancel", "Cancelled", json_output, url, key, app)


@jobs_app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Queue a job's failed items again, with fresh attempts.

    [bold]Example[/]   [cyan]batchyard jobs retry job_0123abcd[/]
    """
    if url:
        with open_client(url, key, app) as client:
            data = dict(client.retry_job(job_id))
            n = int(data.pop("retried", 0))
            view = view_from_json(data)
            worker_note = (
                None
                if client.has_live_worker_for(view.job.handler)
                else ("the items wait until a worker for it runs ([cyan]batchyard serve[/] runs one).")
            )
    else:
        with open_app(ctx, app) as by:
            view, n = by.service.retry_failed(job_id, actor="cli")
            worker_note = (
                None
                if by.service.has_live_worker_for(view.job.handler)
                else (f"start one with [cyan]{hint_command(ctx, app, 'worker')}[/]")
            )
        data = view.to_dict()
    if json_output:
        print_json({"retried_items": n, "job": data})
        return
    items = f"{humanize.count(n)} failed item{'s' if n != 1 else ''}"
    out.print(
        Text.assemble(("✔ ", "green"), f"Queued {items} again: ", render.job_summary_line(view.job)), soft_wrap=True
    )
    if worker_note:
        out.print(
            f"  [yellow]No worker is running for {escape(repr(view.job.handler))}[/]: {worker_note}", soft_wrap=True
        )


@jobs_app.command("delete")
def delete(
    ctx: typer.Context,
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Delete a finished job, its items and its result files, for good.

    Only completed, failed, cancelled or expired jobs can be deleted; it asks first unless [cyan]--yes[/].

    [bold]Examples[/]

      [cyan]batchyard jobs delete job_0123abcd[/]

      [cyan]batchyard jobs delete job_0123abcd --yes --json[/]
    """
    if url:
        with open_client(url, key, app) as client:
            _confirm_delete(view_from_json(client.get_job(job_id)), yes)
            client.delete_job(job_id)
    else:
        with open_app(ctx, app) as by:
            _confirm_delete(by.service.get(job_id), yes)
            by.service.delete(job_id, actor="cli")
    if json_output:
        print_json({"deleted": job_id})
    else:
        out.print(f"[green]✔[/] Deleted [cyan]{job_id}[/]")


def _confirm_delete(view: JobView, yes: bool) -> None:
    job = view.job
    next_job_status(job.status, Action.DELETE)  # refuse before asking, not after
    if not yes:
        typer.confirm(
            f"Delete job {job.id} ({job.status}, {job.total:,} items) and its result files?", abort=True, err=True
        )


@jobs_app.command("download")
def download(
    ctx: typer.Context,
    job_id: JobId,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            file_okay=False,
            help="Where to write the files (created if missing). Default: ./JOB_ID",
        ),
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
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
    if url:
        with open_client(url, key, app) as client:
            files = _download_remote(client, job_id, directory)
    else:
        with open_app(ctx, app) as by:
            job = by.job(job_id)
            paths = job.download(directory)
            rows = {f.name: f.rows for f in render.result_files(job.refresh(), by.storage)}
        files = [render.ResultFile(p.name, p, p.stat().st_size, rows.get(p.name)) for p in paths]
    if json_output:
        print_json(
            {
                "job_id": job_id,
                "directory": str(directory),
                "files": [{"name": f.name, "path": str(f.path), "bytes": f.bytes, "rows": f.rows} for f in files],
            }
        )
        return
    out.print(
        f"[green]✔[/] Wrote {len(files)} file{'s' if len(files) != 1 else ''} of [cyan]{job_id}[/] to {directory}"
    )
    out.print(render.files_table(files))


def _download_remote(client: Client, job_id: str, directory: Path) -> list[render.ResultFile]:
    """The finished job's result files, streamed from the server into ``directory``."""
    data = client.get_job(job_id)
    listed = _remote_result_files(data, directory)
    if not listed:
        raise NotReady(
            f"job {job_id} has no result files yet (status {data.get('status')}); they are written when it finishes"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return [render.ResultFile(f.name, f.path, client.download(job_id, f.name, f.path), f.rows) for f in listed]
