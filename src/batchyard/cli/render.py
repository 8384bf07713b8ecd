"""Rich renderables for jobs: status badges, the jobs table, a job's details, the end-of-run summary.

They draw a job as the wire schema has it (:class:`batchyard.wire.JobOut`), so a job read from the local
database and one read from a server look the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from batchyard.core import humanize
from batchyard.core.lifecycle import CLAIMABLE_JOB_STATUSES

if TYPE_CHECKING:  # the renderables read attributes only: a JobJson draws the same (and needs no pydantic)
    from batchyard.wire import EventOut, ItemProgressOut, JobOut

STATUS_STYLES = {
    "queued": "cyan",
    "running": "bold blue",
    "paused": "yellow",
    "finalizing": "blue",
    "completed": "bold green",
    "failed": "bold red",
    "cancelling": "magenta",
    "cancelled": "magenta",
    "expired": "red",
}
BAR_STYLES = {
    "completed": "green",
    "failed": "red",
    "paused": "yellow",
    "cancelled": "magenta",
    "cancelling": "magenta",
    "expired": "red",
}
MINI_BAR_WIDTH = 10
WIDE_TABLE_COLUMNS = 100  # narrower terminals get the compact jobs table
DETAIL_BAR_WIDTH = 30


@dataclass(frozen=True)
class ResultFile:
    """A result file as shown to the user: its name, where it is (None: on a server), how big."""

    name: str
    path: Path | None
    bytes: int | None
    rows: int | None = None


class JobJson:
    """A job's (or an event's) JSON, ``JobOut.model_dump(mode="json")``, read as the wire model's attributes
    (``job.counts.succeeded``, ``job.current[0].key``), for the renderables here. ``jobs list``/``jobs show`` on
    SQLite get their jobs as JSON without pydantic (:mod:`batchyard.services.quick_reads`) and draw them with it."""

    __slots__ = ("_data",)
    _MODELS = frozenset({"counts", "settings"})  # nested models; the other objects (usage, params, ...) are dicts
    _MODEL_LISTS = frozenset({"current"})

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        if name in self._MODELS:
            return JobJson(value)
        if name in self._MODEL_LISTS:
            return [JobJson(v) for v in value]
        return value


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def progress_bar(job: JobOut, width: int = MINI_BAR_WIDTH) -> Text:
    """``━━━━━━╺━━━━━  48%``: done items (and running items' partial progress) over total, coloured by status."""
    filled = round(width * min(1.0, job.percent / 100.0))
    bar = Text()
    bar.append("━" * filled, style=BAR_STYLES.get(job.status, "blue"))
    bar.append("━" * (width - filled), style="grey30")
    bar.append(f" {job.percent:3.0f}%")
    return bar


def current_step(step: ItemProgressOut, max_chars: int | None = None) -> Text:
    """One running item's latest report: ``import-7  rows 5,000/10,000 · reading sheet 2``."""
    amount = humanize.count(round(step.done)) if step.done == round(step.done) else f"{step.done:g}"
    if step.total is not None:
        total = humanize.count(round(step.total)) if step.total == round(step.total) else f"{step.total:g}"
        amount = f"{amount}/{total} ({100 * min(1.0, step.done / step.total):.0f}%)"
    message = step.message or ""
    if max_chars is not None and len(message) > max_chars:
        message = message[: max_chars - 1] + "…"
    text = Text.assemble((step.key, "cyan"), "  ", amount)
    if message:
        text.append(f" · {message}")
    return text


def current_steps(job: JobOut) -> Text:
    """The latest reports of a job's running items (``ctx.progress``), one per line."""
    return Text("\n").join(current_step(step) for step in job.current)


def ok_failed(job: JobOut) -> Text:
    text = Text()
    text.append(humanize.count(job.counts.succeeded), style="green")
    text.append(" / ")
    text.append(humanize.count(job.counts.failed), style="red" if job.counts.failed else "dim")
    return text


def unattended(job: JobOut) -> bool:
    """Waiting for items to run, and no live worker takes them: nothing will move until one starts."""
    return job.status in CLAIMABLE_JOB_STATUSES and job.workers_alive == 0


def eta_text(job: JobOut) -> str:
    if unattended(job):
        return f"[yellow]no live worker for {escape(job.handler)}[/]"
    if job.status in CLAIMABLE_JOB_STATUSES and job.eta_seconds is not None:
        return humanize.eta(job.eta_seconds)
    return "-"


def jobs_table(jobs: Sequence[JobOut], now: float, *, compact: bool = False) -> Table:
    """One row per job; ``compact`` (a narrow terminal) drops the bar and the creation time."""
    table = Table(show_edge=False, header_style="bold", pad_edge=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Handler", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("Status", no_wrap=True)
    table.add_column("Done" if compact else "Progress", no_wrap=True, justify="right")
    table.add_column("OK/Failed" if compact else "OK / Failed", justify="right", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("ETA", justify="right", no_wrap=True)
    if not compact:
        table.add_column("Created", justify="right", no_wrap=True, style="dim")
    for job in jobs:
        progress = Text(f"{job.percent:.0f}%") if compact else progress_bar(job)
        row: list[RenderableType] = [
            job.id,
            escape(job.handler),
            status_cell(job),
            progress,
            ok_failed(job),
            humanize.duration(job.duration_seconds),
            eta_text(job),
        ]
        if not compact:
            row.append(humanize.ago(job.created_at, now))
        table.add_row(*row)
    return table


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "-"
    clock = datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    return f"{humanize.ago(timestamp, now)}  [dim]{clock}[/]"


def _settings_line(job: JobOut) -> str:
    settings = job.settings
    parts = [
        f"priority {job.priority}",
        f"max attempts {settings.max_attempts}",
        f"timeout {humanize.duration(settings.timeout_seconds) if settings.timeout_seconds else '-'}",
        f"concurrency {settings.concurrency or '-'}",
    ]
    if settings.max_failures is not None:
        parts.append(f"max failures {settings.max_failures}")
    if settings.max_failure_rate is not None:
        parts.append(f"max failure rate {settings.max_failure_rate:.0%}")
    return " · ".join(parts)


def _items_line(job: JobOut) -> Text:
    text = Text()
    counts = job.counts
    pieces = [
        ("succeeded", counts.succeeded, "green"),
        ("failed", counts.failed, "red"),
        ("cancelled", counts.cancelled, "magenta"),
    ]
    if counts.skipped:
        pieces.append(("skipped", counts.skipped, "yellow"))
    if counts.queued or counts.running:
        pieces += [("queued", counts.queued, "cyan"), ("running", counts.running, "blue")]
    for i, (label, n, style) in enumerate(pieces):
        if i:
            text.append(" · ", style="dim")
        text.append(humanize.count(n), style=style if n else "dim")
        text.append(f" {label}")
    return text


REASON_WORDS = {
    "paused_by_user": "paused by a person",
    "paused_by_handler": "paused by the handler",
    "quota_exhausted": "waiting for quota",
}
REASON_CHARS_IN_LIST = 48


def reason_text(job: JobOut, *, limit: int | None = None) -> str | None:
    """Why the job is in its status, in words (``paused by the handler: Token balance exhausted``), or None."""
    if job.status_reason is None:
        return None
    words = REASON_WORDS.get(job.status_reason, job.status_reason.replace("_", " "))
    message = job.status_message or ""
    if limit is not None and len(message) > limit:
        message = message[: limit - 1] + "…"
    return f"{words}: {message}" if message else words


def status_cell(job: JobOut) -> Text:
    """The status, and on a second line why (when there is a reason), for the jobs table."""
    text = status_text(job.status)
    reason = reason_text(job, limit=REASON_CHARS_IN_LIST)
    if reason:
        text.append(f"\n{reason}", style="dim")
    return text


def _status_line(job: JobOut, now: float) -> Text:
    text = status_text(job.status)
    if job.status == "queued" and job.scheduled_at and job.scheduled_at > now:
        text.append(f"  scheduled, starts {humanize.ago(job.scheduled_at, now)}", style="dim")
    reason = reason_text(job)
    if reason:
        text.append(f"  {reason}", style="yellow")
    return text


def _rate_line(job: JobOut) -> str:
    rate = humanize.rate(job.items_per_second, "items")
    if unattended(job):
        return f"{rate} · {eta_text(job)}: start one with [cyan]batchyard worker[/] (a server's runs one)"
    return f"{rate} · ETA {eta_text(job)}" if job.status in CLAIMABLE_JOB_STATUSES else rate


def _add_progress_rows(grid: Table, job: JobOut) -> None:
    bar = progress_bar(job, DETAIL_BAR_WIDTH)
    bar.append(f"  {humanize.count(job.counts.done)} / {humanize.count(job.counts.total)} items")
    grid.add_row("Progress", bar)
    if job.current:  # what running items reported with ctx.progress: their current step
        grid.add_row("Now", current_steps(job))


def _add_optional_rows(grid: Table, job: JobOut) -> None:
    """Params, metadata and who hears of the job (its own webhook, the addresses emailed), when it has them."""
    if job.params:
        grid.add_row("Params", escape(json.dumps(job.params, ensure_ascii=False)))
    if job.metadata:
        grid.add_row("Metadata", escape(json.dumps(job.metadata, ensure_ascii=False)))
    if job.webhook_url:
        grid.add_row("Webhook", escape(job.webhook_url))
    if job.notify_emails:
        grid.add_row("Notify", escape(", ".join(job.notify_emails)))


def job_details(job: JobOut, events: Sequence[EventOut], files: Sequence[ResultFile], now: float) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Status", _status_line(job, now))
    grid.add_row("Handler", escape(job.handler))
    if job.description:
        grid.add_row("Description", escape(job.description))
    if job.tags:
        grid.add_row("Tags", escape(", ".join(job.tags)))
    if job.source:
        grid.add_row("Source", escape(job.source))
    _add_progress_rows(grid, job)
    grid.add_row("Items", _items_line(job))
    grid.add_row("Rate", _rate_line(job))
    grid.add_row("Created", _when(job.created_at, now))
    grid.add_row("Started", _when(job.started_at, now))
    if job.finished_at is not None:
        grid.add_row("Finished", _when(job.finished_at, now))
    grid.add_row("Duration", humanize.duration(job.duration_seconds))
    if job.expires_at is not None:
        grid.add_row("Expires", _when(job.expires_at, now))
    grid.add_row("Settings", _settings_line(job))
    _add_optional_rows(grid, job)
    if job.cost or job.usage:
        usage = ", ".join(f"{k} {v:g}" for k, v in sorted(job.usage.items()))
        grid.add_row("Usage", f"cost {job.cost:g}" + (f" · {escape(usage)}" if usage else ""))
    if job.error:
        grid.add_row("Error", Text(str(job.error.get("message") or job.error), style="red"))
    parts: list[RenderableType] = [grid]
    if files:
        where = files[0].path
        parts += [
            Text(""),
            Text.assemble(("Result files", "bold"), "  ", (f"{where.parent}{os.sep}" if where else "", "dim")),
            files_table(files, with_paths=False),
        ]
    if events:
        parts += [Text(""), Text("Recent events", style="bold"), events_table(events, now)]
    return Panel(Group(*parts), title=f"[bold cyan]{job.id}[/]", title_align="left", expand=False, padding=(0, 1))


def files_table(files: Sequence[ResultFile], *, with_paths: bool = True) -> Table:
    table = Table(show_edge=False, header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("File", style="cyan", no_wrap=True)
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("Rows", justify="right", no_wrap=True)
    if with_paths:
        table.add_column("Path", overflow="fold", style="dim")
    for f in files:
        rows = "-" if f.rows is None else humanize.count(f.rows)
        cells = [f.name, humanize.size(f.bytes), rows]
        if with_paths:
            cells.append(escape(str(f.path)))
        table.add_row(*cells)
    return table


def events_table(events: Sequence[EventOut], now: float) -> Table:
    table = Table(show_edge=False, header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("When", justify="right", no_wrap=True, style="dim")
    table.add_column("Event", no_wrap=True)
    table.add_column("By", no_wrap=True, style="dim")
    table.add_column("Message", overflow="fold")
    for event in events:
        table.add_row(
            humanize.ago(event.at, now),
            Text(event.type, style=STATUS_STYLES.get(event.type, "")),
            escape(event.actor or "-"),
            escape(event.message or ""),
        )
    return table


def summary_panel(job: JobOut, files: Sequence[ResultFile], next_step: str) -> Panel:
    """What ``submit --wait`` and ``jobs watch`` print at the end: outcome, counts, time, speed, where the results
    are and one next step (a command, as Rich markup, that reaches the same database or server)."""
    counts = job.counts
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("Status", status_text(job.status))
    grid.add_row("Items", _items_line(job))
    duration = job.duration_seconds
    grid.add_row("Duration", f"{humanize.duration(duration)}  ({humanize.rate(job.items_per_second, 'items')})")
    if job.error:
        grid.add_row("Error", Text(str(job.error.get("message") or job.error), style="red"))
    if counts.failed and job.status == "completed":
        grid.add_row("Failures", f"[yellow]{humanize.count(counts.failed)} item(s) failed[/]: see errors.jsonl")
    where = files[0].path if files else None
    if where is not None:
        grid.add_row("Results", escape(f"{where.parent}{os.sep}"))
        grid.add_row("", " · ".join(f"[cyan]{f.name}[/] [dim]{humanize.size(f.bytes)}[/]" for f in files))
    grid.add_row("Next", f"[cyan]{next_step}[/]")
    border = "yellow" if job.status == "completed" and counts.failed else BAR_STYLES.get(job.status, "blue")
    return Panel(
        grid,
        title=f"[bold]{job.id}[/] · {escape(job.handler)}",
        title_align="left",
        border_style=border,
        expand=False,
        padding=(0, 1),
    )


def job_summary_line(job: JobOut) -> Text:
    """``job_… is now paused · 3 succeeded · 0 failed · 0 cancelled · 7 queued · 0 running``."""
    text = Text.assemble((job.id, "cyan"), " is now ", status_text(job.status), (" · ", "dim"))
    return text.append_text(_items_line(job))
