"""``jobs list`` and ``jobs show`` on a local SQLite database, answered without the app (issue 6 item 17).

The full path builds a :class:`~batchyard.app.Batchyard`: pydantic-settings, SQLAlchemy, the services, pydantic
models for the output. For a list or one job on SQLite that start-up was most of a second; these functions answer
the same question with the standard library's ``sqlite3`` (:mod:`batchyard.store.sqlite_reads`) and return the
job exactly as ``JobOut.model_dump(mode="json")`` writes it, so ``--json`` prints the same bytes and the tables
draw the same values. ``tests/integration/test_quick_reads.py`` holds them equal to the full path, job by job,
in every status and with every filter.

Each returns None when it cannot answer as the full path would, and the caller then takes the full path:
a database that is missing or not at the newest migration (the app creates or upgrades it, or says why not), a
lease past its expiry (the full path hands its items back to the queue first), a missing job (the full path words
the error), any SQLite error (a locked or unreadable file: the full path reports it).

What is copied here, and why it cannot drift unnoticed: the job's rate, ETA and live workers
(:meth:`batchyard.services.jobs.JobService.view`), its JSON fields (:func:`batchyard.wire.job_fields` plus
pydantic's float coercion) and two settings defaults. Importing either original would import what this module
exists to avoid; the equivalence tests compare the outputs, and a unit test the defaults.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchyard.core.lifecycle import TERMINAL_JOB_STATUSES
from batchyard.core.rate import RECENT_WINDOW_SECONDS, Sample, estimate, finished_rate, percent, processed, remaining
from batchyard.core.records import (
    MAX_CURRENT_ITEMS,
    NO_RUNNING_PROGRESS,
    EventRecord,
    JobFilter,
    JobRecord,
    RunningProgress,
    WorkerRecord,
)
from batchyard.store.sqlite_reads import SqliteReader, head_revision

# Copies of settings.py's defaults (tests/unit/test_quick_reads.py holds them equal): reading them from there
# imports pydantic-settings.
DEFAULT_DATA_DIR = Path("~/.batchyard")
DEFAULT_WORKER_STALE_SECONDS = 60.0
DATABASE_FILE = "batchyard.db"  # Settings.effective_database_url: sqlite:///{data_dir}/batchyard.db
SQLITE_URL_PREFIX = "sqlite:///"
RESULT_FILE_NAMES = ("results.jsonl", "errors.jsonl", "results.csv", "artifacts.zip")  # data/results.py's order
# Environment variables these functions read through the command's options (typer reads the exact names), or
# that only remote commands use. Any other BATCHYARD_* variable may change a setting they would have to validate
# as pydantic-settings does: then the full path answers (and reports a bad value as it always did).
KNOWN_ENVIRONMENT = frozenset({"BATCHYARD_DATA_DIR", "BATCHYARD_DATABASE_URL", "BATCHYARD_URL", "BATCHYARD_API_KEY"})

JobJson = dict[str, Any]
ResultFileInfo = tuple[str, Path, int | None, int | None]  # name, where it is, bytes, rows
QuickJob = tuple[JobJson, list[JobJson], list[ResultFileInfo]]  # the job, its latest events, its result files


@dataclass(frozen=True)
class LocalSqlite:
    """Where the app would find its data: the SQLite database file, and the data dir (result files)."""

    database: Path
    data_dir: Path


def local_sqlite(
    data_dir: Path | None, database_url: str | None, environ: Mapping[str, str] | None = None
) -> LocalSqlite | None:
    """The SQLite database the app would open with these options (``--data-dir``/``--db`` or their environment
    variables, as the command parsed them), or None when the full path must decide: another BATCHYARD_* setting
    in ``environ``, PostgreSQL, or a URL this does not read exactly as SQLAlchemy does."""
    environ = os.environ if environ is None else environ
    if any(name.upper().startswith("BATCHYARD_") and name not in KNOWN_ENVIRONMENT for name in environ):
        return None
    data_dir = (data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    if database_url:
        if not database_url.startswith(SQLITE_URL_PREFIX):
            return None
        database = database_url[len(SQLITE_URL_PREFIX) :]
        # Query options, percent-escapes, "~" (the engine expands it for the folder only) and memory databases
        # are the full path's to read.
        if not database or database == ":memory:" or any(c in database for c in "?%~#"):
            return None
        return LocalSqlite(Path(database), data_dir)
    return LocalSqlite(data_dir / DATABASE_FILE, data_dir)


def list_jobs(local: LocalSqlite, where: JobFilter, *, limit: int) -> list[JobJson] | None:
    """A page of jobs, newest first, each as ``JobOut.model_dump(mode="json")``; None: take the full path."""
    if where.tag is not None or where.created_after is not None or where.created_before is not None:
        return None  # filters the CLI does not set: not covered here
    reader = _open(local.database)
    if reader is None:
        return None
    try:
        records = reader.list_jobs(where, limit=limit)
        active = [j.id for j in records if j.status not in TERMINAL_JOB_STATUSES]
        samples = reader.samples_for(active, time.time() - RECENT_WINDOW_SECONDS)
        live = reader.live_workers(DEFAULT_WORKER_STALE_SECONDS)
        progress = _running_progress(reader, records)
        return [
            job_json(j, *_view(j, samples.get(j.id, []), live, progress.get(j.id, NO_RUNNING_PROGRESS)))
            for j in records
        ]
    except sqlite3.Error:
        return None
    finally:
        reader.close()


def show_job(local: LocalSqlite, job_id: str, *, events: int) -> QuickJob | None:
    """One job as ``JobOut.model_dump(mode="json")``, its newest ``events`` events (oldest first, each as
    ``EventOut``'s JSON) and its result files; None: take the full path (a missing job among others)."""
    reader = _open(local.database)
    if reader is None:
        return None
    try:
        record = reader.get_job(job_id)
        if record is None:
            return None
        samples = reader.samples_for([record.id], time.time() - RECENT_WINDOW_SECONDS)[record.id]
        live = reader.live_workers(DEFAULT_WORKER_STALE_SECONDS)
        progress = _running_progress(reader, [record]).get(record.id, NO_RUNNING_PROGRESS)
        job = job_json(record, *_view(record, samples, live, progress))
        newest = _last_events(reader, job_id, events)
    except sqlite3.Error:
        return None
    finally:
        reader.close()
    return job, [event_json(e) for e in newest], result_files(local.data_dir, job)


def result_files(data_dir: Path, job: JobJson) -> list[ResultFileInfo]:
    """The job's written result files, where the local backend shows them (``DATA_DIR/files/jobs/ID/NAME``)."""
    files = job["result_files"]
    return [
        (name, data_dir / "files" / "jobs" / job["id"] / name, files[name].get("bytes"), files[name].get("rows"))
        for name in RESULT_FILE_NAMES
        if name in files
    ]


def _open(path: Path) -> SqliteReader | None:
    """The database read-only, in one snapshot, if the full path would only read it: it exists, its schema is
    the newest migration's (else the app migrates it, or says why it cannot), and no lease has expired."""
    if not path.is_file():
        return None
    try:
        reader = SqliteReader(path)
    except sqlite3.Error:
        return None
    try:
        reader.begin()
        if reader.schema_revision() == head_revision() and not reader.has_expired_leases():
            return reader
    except sqlite3.Error:
        pass
    reader.close()
    return None


def _last_events(reader: SqliteReader, job_id: str, n: int, page: int = 500) -> list[EventRecord]:
    """The newest ``n`` events, oldest first, read in pages as the local backend reads them."""
    newest: list[EventRecord] = []
    after_id = 0
    while True:
        events = reader.list_events(job_id, after_id=after_id, limit=page)
        newest = (newest + events)[-n:] if n else []
        if len(events) < page:
            return newest
        after_id = events[-1].id


def _running_progress(reader: SqliteReader, records: Sequence[JobRecord]) -> dict[str, RunningProgress]:
    running = [j.id for j in records if j.running > 0 and j.status not in TERMINAL_JOB_STATUSES]
    return reader.running_progress(running, MAX_CURRENT_ITEMS) if running else {}


def _view(
    job: JobRecord,
    samples: list[tuple[float, int, int, float]],
    live: Sequence[WorkerRecord],
    progress: RunningProgress,
) -> tuple[float | None, float | None, int, RunningProgress]:
    """(items per second, ETA, live workers, running progress), as JobService.view computes them."""
    now = time.time()
    alive = sum(1 for w in live if w.serves(job.handler, job.id))
    done = processed(job.succeeded, job.failed)
    if job.status in TERMINAL_JOB_STATUSES or job.status == "finalizing":
        end = job.finished_at or job.last_activity_at or now
        return finished_rate(done, job.started_at, end), None, alive, NO_RUNNING_PROGRESS
    points = [Sample(at, n + part) for at, n, _, part in samples if at >= now - RECENT_WINDOW_SECONDS]
    if job.started_at is not None:
        if job.started_at >= now - RECENT_WINDOW_SECONDS:
            points.append(Sample(job.started_at, 0))
        points.append(Sample(now, done + progress.partial))
    est = estimate(points, remaining(job.queued, job.running, progress.partial), workers_alive=alive)
    eta = est.eta_seconds if job.status != "paused" else None
    return est.items_per_second, eta, alive, progress


def job_json(
    job: JobRecord,
    items_per_second: float | None,
    eta_seconds: float | None,
    workers_alive: int,
    progress: RunningProgress,
) -> JobJson:
    """The job as ``JobOut.model_dump(mode="json")`` writes it: wire.job_fields, then the float fields as floats."""
    finished_items = job.succeeded + job.failed
    done = finished_items + job.cancelled + job.skipped
    started_at = job.started_at
    partial = progress.partial
    return {
        "id": job.id,
        "handler": job.handler,
        "owner": job.owner,
        "project": job.project,
        "status": job.status,
        "status_reason": job.status_reason,
        "status_message": job.status_message,
        "priority": job.priority,
        "description": job.description,
        "tags": job.tags,
        "metadata": job.metadata,
        "params": job.params,
        "source": job.source,
        "counts": {
            "total": job.total,
            "queued": job.queued,
            "running": job.running,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "cancelled": job.cancelled,
            "skipped": job.skipped,
            "done": done,
        },
        "percent": _float(percent(done, job.total, partial)),
        "items_per_second": _float(items_per_second),
        "eta_seconds": _float(eta_seconds),
        "duration_seconds": None if started_at is None else float((job.finished_at or time.time()) - started_at),
        "avg_item_seconds": float(job.busy_seconds / finished_items) if finished_items else None,
        "cost": float(job.cost),
        "usage": {name: float(amount) for name, amount in job.usage.items()},
        "error": job.error,
        "created_at": float(job.created_at),
        "started_at": _float(started_at),
        "finished_at": _float(job.finished_at),
        "last_activity_at": _float(job.last_activity_at),
        "scheduled_at": _float(job.scheduled_at),
        "expires_at": _float(job.expires_at),
        "settings": {
            "max_attempts": job.max_attempts,
            "backoff_base_seconds": float(job.backoff_base_seconds),
            "backoff_max_seconds": float(job.backoff_max_seconds),
            "timeout_seconds": _float(job.timeout_seconds),
            "concurrency": job.concurrency,
            "max_failures": job.max_failures,
            "max_failure_rate": _float(job.max_failure_rate),
        },
        "result_files": job.result_files,
        "files_written_at": _float(job.files_written_at),
        "finished": job.status in TERMINAL_JOB_STATUSES and (job.files_written_at is not None or job.total == 0),
        "workers_alive": workers_alive,
        "running_progress": float(round(partial, 4)),
        "current": [
            {
                "key": p.key,
                "done": float(p.done),
                "total": _float(p.total),
                "message": p.message,
                "updated_at": float(p.updated_at),
            }
            for p in progress.current
        ],
        "webhook_url": job.webhook_url,
        "notify_emails": list(job.notify_emails),
    }


def event_json(event: EventRecord) -> JobJson:
    """An event as ``EventOut.model_dump(mode="json")`` writes it."""
    return {
        "id": event.id,
        "type": event.type,
        "at": float(event.at),
        "actor": event.actor,
        "message": event.message,
        "data": event.data,
    }


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)
