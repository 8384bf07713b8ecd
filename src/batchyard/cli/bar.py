"""A live progress bar that follows one job until it is finished (``submit --wait``, ``jobs watch``,
``Job.wait(progress=True)``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from batchyard.cli.render import STATUS_STYLES, reason_text, unattended
from batchyard.core import humanize
from batchyard.core.lifecycle import CLAIMABLE_JOB_STATUSES
from batchyard.wire import JobOut

if TYPE_CHECKING:  # the bar also follows jobs on a server: it must not need the database layer
    from batchyard.services.jobs import JobService, JobView

POLL_SECONDS = 0.2
STATUS_WIDTH = 10  # "finalizing"
MIN_BAR_WIDTH = 8
MAX_BAR_WIDTH = 40
PAUSE_MESSAGE_CHARS = 40  # a handler's PauseJob message, cut to fit the line
STEP_CHARS = 40  # the current step's message, after the counts
# Job.wait stops its in-process worker after an interrupt, which lets items in flight finish first.
IN_PROCESS_INTERRUPT_NOTE = "[yellow]Interrupted[/]: letting items in flight finish (Ctrl-C again to quit at once)..."


def _bar_width(console: Console) -> int:
    # The text around the bar takes ~70 columns for a 100,000-item job; the bar gets what is left.
    return max(MIN_BAR_WIDTH, min(MAX_BAR_WIDTH, console.width - 72))


class JobProgress:
    """One Rich progress line for a job: status, bar, done/total, percent, items/s, ETA, ok/failed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=_bar_width(console), complete_style="blue", finished_style="green"),
            TextColumn("{task.fields[counts]}", justify="right"),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]}", justify="right"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[outcomes]}"),
            TextColumn("{task.fields[step]}"),
            console=console,
            refresh_per_second=8,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, job: JobOut) -> None:
        counts = job.counts
        status = job.status.value.ljust(STATUS_WIDTH)
        width = len(humanize.count(counts.total))
        description = f"[{STATUS_STYLES.get(job.status, '')}]{status}[/]"
        fields: dict[str, Any] = {
            "counts": f"{humanize.count(counts.done).rjust(width)}/{humanize.count(counts.total)}",
            "speed": humanize.rate(job.items_per_second),
            "eta": _eta_text(job),
            "outcomes": f"[green]✔ {humanize.count(counts.succeeded).rjust(width)}[/] "
            f"[{'red' if counts.failed else 'dim'}]✘ {humanize.count(counts.failed)}[/]"
            + (f" [yellow]skipped {humanize.count(counts.skipped)}[/]" if counts.skipped else ""),
            "step": _step_text(job),
        }
        total = max(counts.total, 1)
        completed = counts.done + job.running_progress if counts.total else 1
        if self.task is None:
            self.task = self.progress.add_task(description, total=total, completed=0, **fields)
        self.progress.update(self.task, description=description, total=total, completed=completed, **fields)


def _step_text(job: JobOut) -> str:
    """The latest ``ctx.progress`` message of a running item (the current step), shortened to fit."""
    if job.finished or not job.current:
        return ""
    step = job.current[0]
    if not step.message:
        return ""
    message = step.message if len(step.message) <= STEP_CHARS else step.message[: STEP_CHARS - 1] + "…"
    return f"[dim]{escape(message)}[/]"


def _eta_text(job: JobOut) -> str:
    if job.finished:
        return f"took {humanize.duration(job.duration_seconds)}"
    if job.status == "finalizing":
        return "writing files"
    if unattended(job):
        return "[yellow]no live worker[/]"
    reason = reason_text(job, limit=PAUSE_MESSAGE_CHARS) if job.status == "paused" else None
    if reason:
        return f"[yellow]{escape(reason)}[/]"
    return f"ETA {humanize.eta(job.eta_seconds if job.status in CLAIMABLE_JOB_STATUSES else None)}"


def follow_job(
    service: JobService,
    job_id: str,
    *,
    timeout: float | None = None,
    console: Console | None = None,
    poll_seconds: float = POLL_SECONDS,
    until: Callable[[JobOut], bool] | None = None,
) -> JobView:
    """Show a live progress bar (on stderr by default) until the job is finished (or ``until`` says so);
    returns the final view.

    Raises :class:`TimeoutError` if ``timeout`` seconds pass first. Processing happens elsewhere (a worker, or
    the in-process one that :meth:`batchyard.Job.wait` starts); this only watches.
    """
    follow(
        lambda: JobOut.of(service.get(job_id)), timeout=timeout, console=console, poll_seconds=poll_seconds, until=until
    )
    return service.get(job_id)


def follow(
    fetch: Callable[[], JobOut],
    *,
    timeout: float | None = None,
    console: Console | None = None,
    poll_seconds: float = POLL_SECONDS,
    interrupt_note: str | None = IN_PROCESS_INTERRUPT_NOTE,
    until: Callable[[JobOut], bool] | None = None,
) -> JobOut:
    """Like :func:`follow_job`, for any source of the job as it is now: ``fetch`` is called every
    ``poll_seconds`` (the local database, or a server's ``GET /api/v1/jobs/{id}``); returns the finished job.
    ``interrupt_note`` is printed on Ctrl-C (None: nothing)."""
    console = console or Console(stderr=True, highlight=False)
    job = fetch()
    console.print(f"[bold cyan]{job.id}[/] · {escape(job.handler)} · {humanize.count(job.counts.total)} items")
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        with JobProgress(console) as display:
            display.show(job)
            while not job.finished and (until is None or not until(job)):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job.id} still {job.status} after {timeout}s")
                time.sleep(poll_seconds)
                job = fetch()
                display.show(job)
    except KeyboardInterrupt:
        if interrupt_note:
            console.print(interrupt_note)
        raise
    return job
