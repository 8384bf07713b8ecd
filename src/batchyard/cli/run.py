"""``batchyard run -i in.jsonl -o out.jsonl --upstream URL``: an OpenAI batch file run online (``vllm run-batch``'s
twin), embedded (SQLite in the data dir, no server) or on a server (``--url``), resumable.

Resuming: the run is found again by its input's content and its output path (``services/runs.py``). Embedded,
the job lives in the data dir's database: running the same command again after Ctrl-C or a crash continues it;
requests answered before are not sent again (those in flight at a crash are, once their short lease has passed).
With ``--url`` the job runs on the server, tagged with the same key: the same command follows it again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from batchyard.cli.common import GlobalOptions, KeyOption, UpstreamOption, UrlOption, err, fail, out
from batchyard.core import humanize

if TYPE_CHECKING:
    from batchyard.app import Batchyard
    from batchyard.wire import JobOut

POLL_SECONDS = 0.25
RUN_LEASE_SECONDS = 10.0  # a crashed run's requests in flight come back this soon after (not the default 30 s)
RUN_GRACE_SECONDS = 10.0  # Ctrl-C: requests in flight get this long to finish before they are handed back
EXIT_INTERRUPTED = 130
DEFAULT_RUN_CONCURRENCY = 256


def run(
    ctx: typer.Context,
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE",
            help="OpenAI batch input file (JSONL).",
        ),
    ],
    output_file: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, metavar="FILE", help="Where the output lines go.")
    ],
    errors_file: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            "-e",
            dir_okay=False,
            metavar="FILE",
            show_default=False,
            help="Where failed requests go. Default: the output file, beside the successes.",
        ),
    ] = None,
    upstream: UpstreamOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=10_000, metavar="N", help="Requests in flight.")
    ] = DEFAULT_RUN_CONCURRENCY,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Run an OpenAI batch file against your upstream and write OpenAI batch output lines.

    Every line is checked first (as OpenAI checks a batch file: nothing runs when one is bad). Output lines are
    [bold]{id, custom_id, response: {status_code, request_id, body}, error}[/], in input order. Ctrl-C stops it;
    the same command again continues where it stopped, without sending answered requests again.

    [bold]Examples[/]

      [cyan]batchyard run -i requests.jsonl -o results.jsonl --upstream http://127.0.0.1:8000/v1[/]

      [cyan]batchyard run -i requests.jsonl -o results.jsonl -e errors.jsonl --concurrency 64[/]

      [cyan]batchyard run -i requests.jsonl -o results.jsonl --url http://batchyard:8000[/]   [dim]# on a server[/]
    """
    if url:
        if upstream:
            fail("--upstream is for an embedded run; with --url the server's upstreams are used", hint="drop one")
        from batchyard.cli.run_remote import run_remote

        run_remote(url, key, input_file, output_file, errors_file)
        return
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops a run as Ctrl-C does
    by = _embedded_app(ctx, upstream, concurrency)
    try:
        _run_embedded(by, input_file, output_file, errors_file, concurrency)
    finally:
        by.close()


def _embedded_app(ctx: typer.Context, upstream: str | None, concurrency: int) -> Batchyard:
    from batchyard.app import Batchyard
    from batchyard.cli.common import use_upstream
    from batchyard.settings import Settings

    options = GlobalOptions.from_context(ctx)
    settings = Settings(**options.overrides())
    updates: dict[str, Any] = {"shutdown_grace_seconds": min(settings.shutdown_grace_seconds, RUN_GRACE_SECONDS)}
    if "BATCHYARD_LEASE_SECONDS" not in os.environ:
        updates["lease_seconds"] = RUN_LEASE_SECONDS
    by = Batchyard(settings.model_copy(update=updates))
    use_upstream(by, upstream)
    if not by.settings.has_upstream:
        fail(
            "batchyard run needs an upstream: --upstream URL (an OpenAI-compatible base URL ending in /v1)",
            hint="or set BATCHYARD_UPSTREAM_URL, or route models in BATCHYARD_UPSTREAMS_FILE; "
            "to try it: batchyard mock-upstream --port 8001",
        )
    return by


def _run_embedded(
    by: Batchyard, input_file: Path, output_file: Path, errors_file: Path | None, concurrency: int
) -> None:
    from batchyard.app import InProcessWorker
    from batchyard.wire import JobOut

    started = by.runs.start(input_file, output_file)
    job = JobOut.of(started.view)
    _print_start(job, started.resumed, by.settings.upstream_url)
    if not job.finished:
        worker = InProcessWorker(by, handlers=["openai"], job_ids=[job.id], concurrency=concurrency, log_failures=False)
        worker.start()
        try:
            job = _follow(lambda: JobOut.of(by.service.get(job.id)), err)
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted[/]: letting requests in flight finish (Ctrl-C again to quit at once)...")
            worker.stop()
            _print_interrupted(JobOut.of(by.service.get(job.id)))
            raise typer.Exit(EXIT_INTERRUPTED) from None
        worker.stop()
    written = by.runs.write_output(job.id, output_file, errors_file)
    _print_done(job, written.succeeded, written.failed, output_file, errors_file)


# -- display ----------------------------------------------------------------------------------------------------


def _print_start(job: JobOut, resumed: bool, upstream: str | None) -> None:
    counts = job.counts
    where = ""
    if upstream:
        from batchyard.outbound.upstreams import display_url

        where = f" → {escape(display_url(upstream))}"
    if resumed:
        err.print(
            f"[bold cyan]{job.id}[/] · resuming: {humanize.count(counts.succeeded + counts.failed)} of "
            f"{humanize.count(counts.total)} requests already done{where}",
            soft_wrap=True,
        )
    else:
        err.print(f"[bold cyan]{job.id}[/] · {humanize.count(counts.total)} requests{where}", soft_wrap=True)


def _print_interrupted(job: JobOut) -> None:
    done = job.counts.succeeded + job.counts.failed
    err.print(
        f"Stopped with {humanize.count(done)} of {humanize.count(job.counts.total)} requests done. "
        "Run the same command again to continue where it stopped.",
        soft_wrap=True,
    )


def _print_done(job: JobOut, succeeded: int, failed: int, output: Path, errors: Path | None) -> None:
    tokens = job.usage or {}
    took = job.duration_seconds
    rate = f" · {humanize.rate(job.items_per_second)}" if job.items_per_second else ""
    token_text = (
        f" · {humanize.count(int(tokens.get('input_tokens', 0)))} in / "
        f"{humanize.count(int(tokens.get('output_tokens', 0)))} out tokens"
        if tokens
        else ""
    )
    cost = f" · cost {job.cost:.4f}" if job.cost else ""
    out.print(
        f"[green]✔ {humanize.count(succeeded)} succeeded[/] · "
        f"[{'red' if failed else 'dim'}]✘ {humanize.count(failed)} failed[/] · "
        f"took {humanize.duration(took)}{rate}{token_text}{cost}",
        soft_wrap=True,
    )
    where = f"{escape(str(output))}" + (f", failures in {escape(str(errors))}" if errors is not None and failed else "")
    out.print(f"Output: {where}", soft_wrap=True)


def _follow(fetch: Any, console: Console) -> JobOut:
    """A live bar (requests, req/s, tokens, ETA) until the job is finished."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    job: JobOut = fetch()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30, complete_style="blue", finished_style="green"),
        TextColumn("{task.fields[counts]}", justify="right"),
        TaskProgressColumn(),
        TextColumn("{task.fields[speed]}", justify="right"),
        TextColumn("{task.fields[tokens]}", justify="right"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("{task.fields[outcomes]}"),
        console=console,
        refresh_per_second=8,
        transient=False,
    )
    with progress:
        task = progress.add_task(completed=_done(job), total=max(job.counts.total, 1), **_fields(job))
        while not job.finished:
            time.sleep(POLL_SECONDS)
            job = fetch()
            progress.update(task, total=max(job.counts.total, 1), completed=_done(job), **_fields(job))
        progress.update(task, completed=_done(job), **_fields(job))
    return job


def _done(job: JobOut) -> int:
    return job.counts.succeeded + job.counts.failed + job.counts.cancelled


def _fields(job: JobOut) -> dict[str, Any]:
    counts = job.counts
    width = len(humanize.count(counts.total))
    usage = job.usage or {}
    total_tokens = int(usage.get("total_tokens", 0))
    eta = (
        f"took {humanize.duration(job.duration_seconds)}"
        if job.finished
        else ("writing" if job.status == "finalizing" else f"ETA {humanize.eta(job.eta_seconds)}")
    )
    return {
        "description": f"[bold]{job.status.value:<10}[/]",
        "counts": f"{humanize.count(_done(job)).rjust(width)}/{humanize.count(counts.total)}",
        "speed": humanize.rate(job.items_per_second, "req"),
        "tokens": f"{humanize.count(total_tokens)} tok",
        "eta": eta,
        "outcomes": f"[green]✔ {humanize.count(counts.succeeded)}[/] "
        f"[{'red' if counts.failed else 'dim'}]✘ {humanize.count(counts.failed)}[/]",
    }
