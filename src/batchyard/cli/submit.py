"""``batchyard submit``: create a job from a JSONL or CSV file, optionally wait for it with a progress bar."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from batchyard.cli.appref import DemoOption
from batchyard.cli.common import (
    AppOption,
    JsonOption,
    KeyOption,
    UrlOption,
    err,
    hint_command,
    open_app,
    open_client,
    out,
    print_json,
    remote_hint,
    report_api_error,
)
from batchyard.core import humanize
from batchyard.errors import BatchyardError

if TYPE_CHECKING:
    from batchyard.client import Client
    from batchyard.wire import JobOut

EXIT_JOB_UNSUCCESSFUL = 1
REMOTE_POLL_SECONDS = 0.3


class InputFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def parse_params(pairs: list[str] | None, params_json: str | None) -> dict[str, Any] | None:
    """``--params-json`` first, then each ``--param key=value`` (the value read as JSON when it is JSON)."""
    params: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--params-json") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("must be a JSON object, e.g. '{\"ms\": 50}'", param_hint="--params-json")
        params.update(loaded)
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = value
    return params or None


def submit(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            show_default=False,
            help="A JSONL or CSV file, one item per line; [bold]-[/] reads standard input (JSONL or CSV, sniffed).",
        ),
    ],
    handler: Annotated[
        str,
        typer.Option(
            "--handler", "-H", metavar="NAME", show_default=False, help="The handler that processes each item."
        ),
    ],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            "-w",
            metavar="",
            help="Follow the job with a progress bar until it is finished; without a running worker the items are "
            "processed here.",
        ),
    ] = False,
    json_output: JsonOption = False,
    input_format: Annotated[
        InputFormat | None,
        typer.Option(
            "--format",
            metavar="jsonl|csv",
            help="Input format. Default: from the file extension, else sniffed (standard input too): a first line "
            "starting with [bold]{[/] is JSONL, anything else CSV with a header row.",
        ),
    ] = None,
    priority: Annotated[int, typer.Option(metavar="N", help="Higher runs first (-1000 to 1000).")] = 0,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A job parameter handed to every item (repeatable); VALUE is read as JSON when it parses.",
        ),
    ] = None,
    params_json: Annotated[
        str | None, typer.Option("--params-json", metavar="JSON", help="Job parameters as one JSON object.")
    ] = None,
    description: Annotated[
        str | None, typer.Option(metavar="TEXT", help="A note shown in lists and the dashboard.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", metavar="TAG", help="A tag (repeatable).")] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Attempts per item before it fails.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, metavar="SECONDS", help="Time limit per attempt at an item.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="At most this many items of the job in flight at once.")
    ] = None,
    max_failures: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="Fail the whole job once more items than this have failed.")
    ] = None,
    max_failure_rate: Annotated[
        float | None,
        typer.Option(
            metavar="FRACTION", help="Fail the whole job once this fraction of finished items failed (e.g. 0.2)."
        ),
    ] = None,
    schedule_in: Annotated[
        float | None, typer.Option(min=0, metavar="SECONDS", help="Start no earlier than this many seconds from now.")
    ] = None,
    expires_in: Annotated[
        float | None,
        typer.Option(min=0, metavar="SECONDS", help="Completion window: the job expires if not finished by then."),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="POST this job's events (job.completed, job.failed, ...) here, signed with the owner's default "
            "secret (Standard Webhooks; GET /api/v1/webhooks/secret).",
        ),
    ] = None,
    notify_email: Annotated[
        list[str] | None,
        typer.Option("--notify-email", metavar="ADDR", help="Email this address when the job ends (repeatable)."),
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
    demo: DemoOption = False,
) -> None:
    """Submit a batch: every line of FILE becomes an item for HANDLER.

    The whole file is checked first; if any line is bad, nothing is created and each problem is listed with
    its line number (exit code 2). With [bold]--url[/] the file is uploaded to that server and its workers
    process it. With [bold]--wait[/] the exit code is 1 when the job ends failed, cancelled
    or expired (a job whose items partly failed still ends [green]completed[/]).

    [bold]Examples[/]

      [cyan]batchyard submit items.jsonl --handler echo --wait[/]

      [cyan]batchyard submit rows.csv -H sleep --param ms=50 --tag demo --description "first try"[/]

      [cyan]batchyard submit big.jsonl -H thumbnail --app mypkg.jobs:app --json[/]

      [cyan]cat items.jsonl | batchyard submit - -H echo --wait --json | jq .counts[/]

      [cyan]batchyard submit items.jsonl -H echo --webhook https://example.com/hooks --notify-email ops@example.com[/]

      [cyan]BATCHYARD_API_KEY=by_... batchyard submit items.jsonl -H echo --url http://127.0.0.1:8000 --wait[/]
    """
    from batchyard.cli import render
    from batchyard.cli.backends import LocalBackend
    from batchyard.wire import JobOut

    params = parse_params(param, params_json)
    from_stdin = str(file) == "-"
    if not from_stdin and not file.is_file():
        raise typer.BadParameter(f"no file {str(file)!r}", param_hint="FILE")
    options: dict[str, Any] = {
        "priority": priority,
        "params": params,
        "description": description,
        "tags": tag or [],
        "scheduled_at": time.time() + schedule_in if schedule_in else None,
        "expires_in_seconds": expires_in,
        "max_attempts": max_attempts,
        "timeout_seconds": timeout,
        "concurrency": concurrency,
        "max_failures": max_failures,
        "max_failure_rate": max_failure_rate,
        "webhook_url": webhook,
        "notify_emails": list(notify_email or []),
    }
    if url:
        with open_client(url, key, app) as client:
            _submit_remote(ctx, client, handler, None if from_stdin else file, input_format, options, wait, json_output)
        return
    with open_app(ctx, app, demo=demo) as by:
        job = by.submit(
            handler,
            sys.stdin.buffer if from_stdin else file,
            format=input_format.value if input_format else None,  # None: by the extension, else sniffed
            source_name="stdin" if from_stdin else file.name,
            **options,
        )
        if not wait:
            submitted = JobOut.of(job.refresh())
            if json_output:
                print_json(submitted.model_dump(mode="json"))
            else:
                worker_note = (
                    None
                    if by.service.has_live_worker_for(handler)
                    else (
                        f"start one with [cyan]{hint_command(ctx, app, 'worker')}[/], or submit with [cyan]--wait[/] "
                        "to run it here."
                    )
                )
                _print_submitted(submitted, hint_command(ctx, app, "jobs show", job.id), worker_note)
            return
        try:
            finished = JobOut.of(job.wait(progress=not json_output))
        except KeyboardInterrupt:
            show = hint_command(ctx, app, "jobs show", job.id)
            err.print(
                f"[yellow]Stopped following {job.id}.[/] Its remaining items wait for a worker "
                f"([cyan]{hint_command(ctx, app, 'worker')}[/]); check on it with [cyan]{show}[/]",
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        if json_output:
            print_json(finished.model_dump(mode="json"))
        else:
            files = LocalBackend(ctx, by, app).result_files(finished)
            next_step = hint_command(ctx, app, "jobs download", job.id, "-o", "DIR")
            out.print(render.summary_panel(finished, files, next_step))
    if finished.status != "completed":
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)


def _print_submitted(job: JobOut, show_command: str, worker_note: str | None) -> None:
    from batchyard.cli import render

    when = ""
    if job.scheduled_at and job.scheduled_at > time.time():
        when = f", scheduled to start in {humanize.duration(job.scheduled_at - time.time())}"
    out.print(
        f"[green]✔[/] Submitted [bold cyan]{job.id}[/]: {job.counts.total:,} items for "
        f"[bold]{escape(job.handler)}[/] ({render.status_text(job.status).markup}{when})"
    )
    out.print(f"  Follow it: [cyan]{show_command}[/]", soft_wrap=True)
    if worker_note:
        out.print(f"  [yellow]No worker is running for {escape(repr(job.handler))}[/]: {worker_note}", soft_wrap=True)


# -- remote mode: the same over the REST API ---------------------------------------------------------------------


def upload_name(file: Path | None, input_format: InputFormat | None) -> str:
    """The name the upload gets: the file's own, with the format as its extension when --format says so."""
    name = file.name if file is not None else "stdin"
    fmt = input_format.value if input_format else None  # "stdin" has no extension: the server sniffs it
    if fmt and not name.lower().endswith(f".{fmt}"):
        name = f"{name}.{fmt}"
    return name


def _submit_remote(
    ctx: typer.Context,
    client: Client,
    handler: str,
    file: Path | None,
    input_format: InputFormat | None,
    options: dict[str, Any],
    wait: bool,
    json_output: bool,
) -> None:
    """Upload the file (streamed), create the job from it, then follow it by polling the server."""
    from batchyard.cli import render
    from batchyard.cli.bar import follow
    from batchyard.errors import ApiError

    source = file.name if file is not None else "stdin"
    with contextlib.ExitStack() as stack:
        stream = sys.stdin.buffer if file is None else stack.enter_context(file.open("rb"))
        uploaded = client.upload_file(stream, filename=upload_name(file, input_format))
    try:
        created = client.create_job(handler, input_file_id=uploaded.id, **options)
    except ApiError as exc:
        with contextlib.suppress(BatchyardError):  # the server keeps nothing of a submission that failed
            client.delete_file(uploaded.id)
        report_api_error(exc, source)
    job_id = created.id
    if not wait:
        if json_output:
            print_json(created.model_dump(mode="json"))
        else:
            worker_note = (
                None
                if client.has_live_worker_for(handler)
                else (
                    "the job waits until a worker for it runs ([cyan]batchyard serve[/] runs one; "
                    "[cyan]batchyard worker[/] on a machine that shares the server's database)."
                )
            )
            _print_submitted(created, remote_hint(ctx, "jobs show", job_id), worker_note)
        return
    latest = [created]

    def fetch() -> JobOut:
        latest.append(client.get_job(job_id))
        del latest[:-1]
        return latest[0]

    try:
        if json_output:
            final = client.wait_job(job_id, poll_seconds=REMOTE_POLL_SECONDS)
        else:
            follow(fetch, poll_seconds=REMOTE_POLL_SECONDS, interrupt_note=None)
            final = latest[0]
    except KeyboardInterrupt:
        err.print(
            f"[yellow]Stopped following {job_id}[/]: it goes on on the server; check on it with "
            f"[cyan]{remote_hint(ctx, 'jobs show', job_id)}[/]",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    if json_output:
        print_json(final.model_dump(mode="json"))
    else:
        next_step = remote_hint(ctx, "jobs download", job_id, "-o", "DIR")
        out.print(render.summary_panel(final, [], next_step))
    if final.status != "completed":
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)
