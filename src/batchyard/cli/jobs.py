"""``batchyard jobs ...``: list, inspect and control jobs, on the local database or on a server (``--url``).

Each command opens a backend (:mod:`batchyard.cli.backends`), asks it one thing and renders the answer once.
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from rich.markup import escape
from rich.text import Text

from batchyard.cli.common import (
    AppOption,
    GlobalOptions,
    JsonOption,
    KeyOption,
    UrlOption,
    err,
    fail,
    out,
    print_json,
)
from batchyard.core import humanize
from batchyard.core.lifecycle import Action, JobStatus, next_job_status

if TYPE_CHECKING:  # imported by the commands that use them: `batchyard --help` needs neither a database nor pydantic
    from batchyard.cli.backends import Backend
    from batchyard.core.records import JobFilter
    from batchyard.services.quick_reads import LocalSqlite, QuickJob
    from batchyard.wire import EventOut, JobOut

EVENTS_SHOWN = 10
EXIT_JOB_UNSUCCESSFUL = 1  # as submit --wait
EXIT_INTERRUPTED = 130
EVENTS_IN_JSON = 50

jobs_app = typer.Typer(
    name="jobs",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="List, inspect and control jobs: [cyan]list, show, watch, pause, resume, cancel, retry, download, delete[/]. "
    "Each works on the local database, or on a server with [cyan]--url[/] and [cyan]--key[/].",
)


def open_backend(
    ctx: typer.Context, url: str | None, key: str | None, app_ref: str | None, *, rescue_stale: bool = False
) -> AbstractContextManager[Backend]:
    """The local database or the server (``--url``), as :func:`batchyard.cli.backends.open_backend` opens it."""
    from batchyard.cli import backends

    return backends.open_backend(ctx, url, key, app_ref, rescue_stale=rescue_stale)


def quick_local_database(ctx: typer.Context, url: str | None, app_ref: str | None) -> LocalSqlite | None:
    """The local SQLite database, when ``jobs list``/``jobs show`` may read it without building the app (see
    :mod:`batchyard.services.quick_reads`); None for a server, ``--app``, PostgreSQL or other settings."""
    if url or app_ref:
        return None
    from batchyard.services import quick_reads

    options = GlobalOptions.from_context(ctx)
    return quick_reads.local_sqlite(options.data_dir, options.database_url)


def _quick_list(local: LocalSqlite | None, where: JobFilter, limit: int) -> list[dict[str, Any]] | None:
    if local is None:
        return None
    from batchyard.services import quick_reads

    return quick_reads.list_jobs(local, where, limit=limit)


def _quick_show(local: LocalSqlite | None, job_id: str, events: int) -> QuickJob | None:
    if local is None:
        return None
    from batchyard.services import quick_reads

    return quick_reads.show_job(local, job_id, events=events)


JobId = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="The job's id (from submit or jobs list).", show_default=False)
]


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help="Only jobs in these statuses, repeated or comma-separated: queued, running, paused, finalizing, "
            "completed, failed, cancelling, cancelled, expired; or a group: active (not finished yet), finished.",
        ),
    ] = None,
    handler: Annotated[
        str | None, typer.Option("--handler", "-H", metavar="NAME", help="Only jobs of this handler.")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", metavar="NAME", help="Only this project's jobs.")] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", "-q", metavar="TEXT", help="A job id or its prefix, or text in descriptions and tags."
        ),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", metavar="NAME", help="One owner's jobs (an admin key, with --url).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, metavar="N", help="At most this many jobs.")
    ] = 20,
    csv_output: Annotated[
        bool,
        typer.Option(
            "--csv", help="Write every matching job as CSV to stdout (the API's jobs.csv; --limit does not apply)."
        ),
    ] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """List jobs, newest first, with their progress.

    Filters combine: [cyan]--status[/] takes several statuses (repeated or comma-separated) or the group
    [cyan]active[/]; [cyan]--handler[/], [cyan]--project[/] and [cyan]--search[/] narrow further.

    [bold]Examples[/]

      [cyan]batchyard jobs list[/]

      [cyan]batchyard jobs list --status running,paused --handler thumbnail[/]

      [cyan]batchyard jobs list --status active --search march[/]

      [cyan]batchyard jobs list --status failed --csv > failed-jobs.csv[/]

      [cyan]batchyard jobs list --json | jq -r '.[].id'[/]

      [cyan]batchyard jobs list --url http://127.0.0.1:8000 --status failed[/]   [dim]# key in BATCHYARD_API_KEY[/]
    """
    from batchyard.cli import render
    from batchyard.core.jobfilter import parse_statuses
    from batchyard.core.records import JobFilter
    from batchyard.errors import InvalidRequest

    try:
        statuses = parse_statuses(status, param="--status")
    except InvalidRequest as exc:
        raise typer.BadParameter(exc.message.removeprefix("--status: "), param_hint="--status") from None
    where = JobFilter(owner=owner, statuses=statuses, handler=handler, project=project, search=search or None)
    quick = None if csv_output else _quick_list(quick_local_database(ctx, url, app), where, limit)
    if quick is not None:  # the same jobs, as JSON, without building the app
        jobs = cast("list[JobOut]", [render.JobJson(j) for j in quick])
        if json_output:
            print_json(quick)
            return
    else:
        with open_backend(ctx, url, key, app, rescue_stale=True) as backend:
            if csv_output:
                for chunk in backend.jobs_csv(where):
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                return
            jobs = backend.list_jobs(where, limit=limit)
    if json_output:
        print_json([j.model_dump(mode="json") for j in jobs])
    elif not jobs:
        filtered = " matching those filters" if status or handler or project or search or owner else " yet"
        out.print(f"No jobs{filtered}. Submit one: [cyan]batchyard submit items.jsonl --handler echo --wait[/]")
    else:
        out.print(render.jobs_table(jobs, time.time(), compact=out.width < render.WIDE_TABLE_COLUMNS))


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
    from batchyard.cli import render

    quick = _quick_show(quick_local_database(ctx, url, app), job_id, _events_shown(json_output))
    if quick is not None:  # the same job, as JSON, without building the app
        job_json, events_json, found = quick
        if json_output:
            print_json({**job_json, "events": events_json})
            return
        job = cast("JobOut", render.JobJson(job_json))
        events = cast("list[EventOut]", [render.JobJson(e) for e in events_json])
        files = [render.ResultFile(name, path, size, rows) for name, path, size, rows in found]
        out.print(render.job_details(job, events, files, time.time()))
        return
    with open_backend(ctx, url, key, app, rescue_stale=True) as backend:
        job = backend.get_job(job_id)
        events = backend.last_events(job_id, _events_shown(json_output))
        files = backend.result_files(job)
        download_hint = backend.hint("jobs download", job_id, "-o", "DIR")
    if json_output:
        print_json({**job.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]})
        return
    out.print(render.job_details(job, events, files, time.time()))
    if files and files[0].path is None:  # on a server: say how to get them here
        out.print(f"Download them: [cyan]{download_hint}[/]", soft_wrap=True)


def _events_shown(json_output: bool) -> int:
    return EVENTS_IN_JSON if json_output else EVENTS_SHOWN


def _report_move(job: JobOut, done: str, json_output: bool) -> None:
    from batchyard.cli import render

    if json_output:
        print_json(job.model_dump(mode="json"))
    else:
        out.print(Text.assemble(("✔ ", "green"), f"{done}: ", render.job_summary_line(job)), soft_wrap=True)


@jobs_app.command("watch")
def watch(
    ctx: typer.Context,
    job_id: JobId,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Follow a job with a live progress bar until it is finished, then print its summary, as submit --wait does.

    It only watches: workers ([cyan]batchyard worker[/], [cyan]batchyard serve[/]) process the items. Ctrl-C stops
    watching and leaves the job running. The exit code is 1 when the job ends failed, cancelled or expired (a
    job whose items partly failed still ends [green]completed[/]), 130 after Ctrl-C. With [cyan]--json[/] there
    is no bar: the finished job is printed as JSON.

    [bold]Examples[/]

      [cyan]batchyard jobs watch job_0123abcd[/]

      [cyan]batchyard jobs watch job_0123abcd --url http://127.0.0.1:8000[/]   [dim]# key in BATCHYARD_API_KEY[/]

      [cyan]batchyard jobs watch job_0123abcd --json | jq .counts[/]
    """
    from batchyard.cli import render

    with open_backend(ctx, url, key, app) as backend:
        try:
            job = _follow(backend, job_id, quiet=json_output)
        except KeyboardInterrupt:
            err.print(
                f"[yellow]Stopped watching {job_id}[/]: the job goes on. Watch it again with "
                f"[cyan]{backend.hint('jobs watch', job_id)}[/]",
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        files = backend.result_files(job)
        next_step = backend.hint("jobs download", job_id, "-o", "DIR")
    if json_output:
        print_json(job.model_dump(mode="json"))
    else:
        out.print(render.summary_panel(job, files, next_step))
    if job.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)


def _follow(backend: Backend, job_id: str, *, quiet: bool) -> JobOut:
    """The job once finished: followed with a progress bar on stderr, or ``quiet``ly."""
    job = backend.get_job(job_id)
    if not job.finished and not backend.has_live_worker_for(job.handler):
        err.print(
            f"[yellow]No worker is running for {escape(repr(job.handler))}[/]: {backend.start_worker_hint()}",
            soft_wrap=True,
        )
    if not quiet:
        from batchyard.cli.bar import follow

        return follow(lambda: backend.get_job(job_id), poll_seconds=backend.poll_seconds, interrupt_note=None)
    while not job.finished:
        time.sleep(backend.poll_seconds)
        job = backend.get_job(job_id)
    return job


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
    with open_backend(ctx, url, key, app) as backend:
        job = backend.pause(job_id)
    _report_move(job, "Paused", json_output)


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
    with open_backend(ctx, url, key, app) as backend:
        job = backend.resume(job_id)
    _report_move(job, "Resumed", json_output)


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
    with open_backend(ctx, url, key, app) as backend:
        job = backend.cancel(job_id)
    _report_move(job, "Cancelled", json_output)


@jobs_app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: JobId,
    only_failed: Annotated[
        bool,
        typer.Option(
            "--only-failed",
            help="Queue only the failed items again (a cancelled or expired job's cancelled items stay cancelled).",
        ),
    ] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Queue a job's failed items again, with fresh attempts. A [bold]cancelled[/] or [bold]expired[/] job runs
    again: its failed and cancelled items are queued (a [cyan]rerun[/] in its timeline), the results of the items
    that finished are kept, and the result files are written afresh, with old and new results, when it ends.

    [bold]Example[/]   [cyan]batchyard jobs retry job_0123abcd[/]
    """
    from batchyard.cli import render

    with open_backend(ctx, url, key, app) as backend:
        before = backend.get_job(job_id)
        job, n = backend.retry(job_id, only_failed=only_failed)
        worker_note = None if backend.has_live_worker_for(job.handler) else backend.start_worker_hint()
    if json_output:
        print_json({"retried_items": n, "job": job.model_dump(mode="json")})
        return
    rerun = before.status in ("cancelled", "expired")
    what = "item" if rerun and not only_failed else "failed item"
    items = f"{humanize.count(n)} {what}{'s' if n != 1 else ''}"
    verb = f"Running the {before.status} job again, queued" if rerun else "Queued"
    out.print(Text.assemble(("✔ ", "green"), f"{verb} {items}: ", render.job_summary_line(job)), soft_wrap=True)
    if worker_note:
        out.print(f"  [yellow]No worker is running for {escape(repr(job.handler))}[/]: {worker_note}", soft_wrap=True)


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
    with open_backend(ctx, url, key, app) as backend:
        _confirm_delete(backend.get_job(job_id), yes)
        backend.delete(job_id)
    if json_output:
        print_json({"deleted": job_id})
    else:
        out.print(f"[green]✔[/] Deleted [cyan]{job_id}[/]")


def _confirm_delete(job: JobOut, yes: bool) -> None:
    next_job_status(job.status, Action.DELETE)  # refuse before asking, not after
    if yes:
        return
    try:
        confirmed = typer.confirm(
            f"Delete job {job.id} ({job.status}, {job.counts.total:,} items) and its result files?", err=True
        )
    except typer.Abort:  # no answer: standard input ended (a script, CI) or Ctrl-C
        fail(f"job {job.id} was not deleted: no answer to the question", hint="pass --yes to delete without asking")
    if not confirmed:
        raise typer.Abort()


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
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            metavar="",
            help="For a job that is not finished: results.jsonl, errors.jsonl and results.csv of the items "
            "finished so far, built now. A finished job's files are the same with or without it.",
        ),
    ] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
) -> None:
    """Download a finished job's result files: results.jsonl, errors.jsonl, results.csv, artifacts.zip.

    Each file is written only if the job has it (errors.jsonl is empty when nothing failed; artifacts.zip
    exists when handlers saved artifacts). A job still running has no result files yet: [cyan]--partial[/]
    downloads the results of the items finished so far (as the REST API serves them), and says so.

    [bold]Examples[/]

      [cyan]batchyard jobs download job_0123abcd -o out/[/]

      [cyan]batchyard jobs download job_0123abcd -o out/ --json | jq -r '.files[].path'[/]

      [cyan]batchyard jobs download job_0123abcd -o so-far/ --partial[/]   [dim]# while it runs[/]
    """
    from batchyard.cli import render

    directory = output or Path(job_id)
    with open_backend(ctx, url, key, app) as backend:
        job = backend.get_job(job_id)
        if not job.result_files and not partial:
            _no_result_files_yet(job, backend, output)
        files = backend.download(job, directory, partial=partial)
    is_partial = not job.result_files
    if json_output:
        print_json(
            {
                "job_id": job_id,
                "directory": str(directory),
                "partial": is_partial,
                "files": [{"name": f.name, "path": str(f.path), "bytes": f.bytes, "rows": f.rows} for f in files],
            }
        )
        return
    noun = f"file{'s' if len(files) != 1 else ''}"
    if is_partial:
        counts = job.counts
        out.print(
            f"[yellow]✔ Wrote {len(files)} partial {noun}[/] of [cyan]{job_id}[/] to {directory}: the "
            f"{humanize.count(counts.done)} of {humanize.count(counts.total)} items finished so far (the job is "
            f"{job.status}). Download again once it finishes for the final files.",
            soft_wrap=True,
        )
    else:
        out.print(f"[green]✔[/] Wrote {len(files)} {noun} of [cyan]{job_id}[/] to {directory}")
    out.print(render.files_table(files))


def _no_result_files_yet(job: JobOut, backend: Backend, output: Path | None) -> NoReturn:
    """Say the job has no result files yet, and what to do instead: download so far, or follow it."""
    counts = job.counts
    if counts.done:
        words = ["jobs download", job.id, *(["-o", str(output)] if output else []), "--partial"]
        hint = (
            f"{humanize.count(counts.done)} of {humanize.count(counts.total)} items have finished: "
            f"download their results so far with {backend.hint(*words)}"
        )
    else:
        hint = f"no item has finished yet; follow the job with {backend.hint('jobs watch', job.id)}"
    fail(
        f"job {job.id} has no result files yet (status {job.status}); they are written when it finishes",
        hint=hint,
    )
