"""Reads of a local SQLite database with the standard library's ``sqlite3``: no SQLAlchemy, no writes.

``batchyard jobs list`` and ``jobs show`` on SQLite read a handful of rows; importing SQLAlchemy to build those
statements cost them more than half a second of start-up (issue 6 item 17). These are the same SELECTs as
:mod:`batchyard.store.jobs`, :mod:`batchyard.store.workers`, :mod:`batchyard.store.progress` and the lease check
of :meth:`batchyard.store.claims.ClaimStore.rescue_expired_leases`, written out as SQLite SQL;
``tests/integration/test_sqlite_reads.py`` holds every one of them to the SQLAlchemy version's rows over a
populated database, with every filter. Anything they do not cover (PostgreSQL, a filter the CLI never sets)
goes through the store as before.

The connection is read-only (``mode=ro``): it can neither create a missing database nor change one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchyard.core.jobfilter import id_prefix_range
from batchyard.core.records import (
    EventRecord,
    ItemProgress,
    JobFilter,
    JobRecord,
    RunningProgress,
    WorkerRecord,
    decode_json,
)

MIGRATIONS_VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
BUSY_TIMEOUT_MS = 60_000  # as the store's engine (PRAGMA busy_timeout): wait for a writer's checkpoint, never fail
_NOW = "(julianday('now') - 2440587.5) * 86400.0"  # the database clock, as store/engine.py reads it
_LIKE_ESCAPE = "/"  # SQLAlchemy's autoescape character


def head_revision() -> str:
    """The newest migration's revision, read from the file names (``0003_item_rescues.py`` is revision 0003;
    tests/integration/test_migrations.py holds this equal to Alembic's own head)."""
    return max(path.name.split("_", 1)[0] for path in MIGRATIONS_VERSIONS.glob("[0-9]*_*.py"))


class _Row:
    """A sqlite3 row where :meth:`JobRecord.from_row` looks for a SQLAlchemy row's mapping."""

    __slots__ = ("_mapping",)

    def __init__(self, row: sqlite3.Row) -> None:
        self._mapping = row


class SqliteReader:
    """One read-only connection to a SQLite database file, and the reads ``jobs list``/``jobs show`` make."""

    def __init__(self, path: Path) -> None:
        uri = f"file:{quote(str(path))}?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def close(self) -> None:
        self.conn.close()

    def begin(self) -> None:
        """One snapshot for every read that follows (a deferred transaction: it never waits for a writer)."""
        self.conn.execute("BEGIN")

    def now(self) -> float:
        return float(self.conn.execute(f"SELECT {_NOW}").fetchone()[0])

    def schema_revision(self) -> str | None:
        """The database's migration revision (Alembic's ``alembic_version`` table), None before the first one."""
        found = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        if found is None:
            return None
        row = self.conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def has_expired_leases(self) -> bool:
        """Whether a lease is past its expiry: the rescue that ``jobs list``/``show`` run first would act."""
        return self.conn.execute(f"SELECT 1 FROM leases WHERE expires_at < {_NOW} LIMIT 1").fetchone() is not None

    # -- jobs ----------------------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE jobs.id = ?", (job_id,)).fetchone()
        return None if row is None else JobRecord.from_row(_Row(row))  # type: ignore[arg-type]

    def list_jobs(self, where: JobFilter, *, limit: int) -> list[JobRecord]:
        """Jobs matching ``where``, newest first (the store's ``list_jobs`` with its default sort)."""
        conditions, params = job_conditions(where)
        sql = "SELECT * FROM jobs"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY jobs.created_at DESC, jobs.id DESC LIMIT ?"
        rows = self.conn.execute(sql, (*params, limit)).fetchall()
        return [JobRecord.from_row(_Row(r)) for r in rows]  # type: ignore[arg-type]

    def samples_for(self, job_ids: Sequence[str], since: float) -> dict[str, list[tuple[float, int, int, float]]]:
        """Recent progress samples (at, processed, failed, partial) of these jobs, oldest first."""
        out: dict[str, list[tuple[float, int, int, float]]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return out
        rows = self.conn.execute(
            "SELECT job_id, at, done, failed, partial FROM progress_samples "
            f"WHERE job_id IN ({_marks(job_ids)}) AND at >= ? ORDER BY at",
            (*job_ids, since),
        ).fetchall()
        for job_id, at, done, failed, partial in rows:
            out[job_id].append((at, done, failed, partial))
        return out

    def list_events(self, job_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventRecord]:
        rows = self.conn.execute(
            "SELECT id, job_id, at, type, actor, message, data FROM job_events "
            "WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?",
            (job_id, after_id, limit),
        ).fetchall()
        return [
            EventRecord(
                r["id"],
                r["job_id"],
                r["at"],
                r["type"],
                r["actor"],
                r["message"],
                decode_json(r["data"]) if r["data"] else {},
            )
            for r in rows
        ]

    # -- workers and running items ---------------------------------------------------------------------------------

    def live_workers(self, live_within: float) -> list[WorkerRecord]:
        """Running (or stopping) workers seen in the last ``live_within`` seconds, oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM workers WHERE status IN ('running', 'stopping') "
            f"AND last_seen_at >= {_NOW} - ? ORDER BY started_at",
            (live_within,),
        ).fetchall()
        return [
            WorkerRecord(
                r["id"],
                r["host"],
                r["pid"],
                json.loads(r["handlers"]),
                r["concurrency"],
                r["started_at"],
                r["last_seen_at"],
                r["in_flight"],
                r["status"],
                None if r["jobs"] is None else json.loads(r["jobs"]),
            )
            for r in rows
        ]

    def running_progress(self, job_ids: Sequence[str], limit: int) -> dict[str, RunningProgress]:
        """What running items of these jobs last reported (``ctx.progress``): per job with reports, the sum of
        their fractions and the ``limit`` latest, most recent first. One statement, as the store's."""
        if not job_ids:
            return {}
        rows = self.conn.execute(
            "SELECT job_id, key, done, total, message, updated_at, partial FROM ("
            " SELECT item_progress.job_id AS job_id, items.key AS key, item_progress.done AS done,"
            " item_progress.total AS total, item_progress.message AS message,"
            " item_progress.updated_at AS updated_at,"
            " row_number() OVER (PARTITION BY item_progress.job_id"
            " ORDER BY item_progress.updated_at DESC, items.seq) AS rank,"
            " coalesce(sum(item_progress.fraction) OVER (PARTITION BY item_progress.job_id), 0.0) AS partial"
            " FROM item_progress JOIN items ON items.job_id = item_progress.job_id"
            " AND items.seq = item_progress.seq AND items.lease_token = item_progress.lease_token"
            " AND items.status = 'running'"
            f" WHERE item_progress.job_id IN ({_marks(job_ids)})"
            ") WHERE rank <= ? ORDER BY job_id, rank",
            (*job_ids, limit),
        ).fetchall()
        partial: dict[str, float] = {}
        current: dict[str, list[ItemProgress]] = {}
        for row in rows:
            partial[row["job_id"]] = float(row["partial"])
            current.setdefault(row["job_id"], []).append(
                ItemProgress(row["key"], row["done"], row["total"], row["message"], row["updated_at"])
            )
        return {job_id: RunningProgress(partial[job_id], tuple(reports)) for job_id, reports in current.items()}


def job_conditions(where: JobFilter) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a job filter and their parameters, as :func:`batchyard.store.jobs.job_conditions`
    writes them."""
    conditions: list[str] = []
    params: list[Any] = []
    if where.owner is not None:
        conditions.append("jobs.owner = ?")
        params.append(where.owner)
    if where.statuses:
        conditions.append(f"jobs.status IN ({_marks(where.statuses)})")
        params.extend(where.statuses)
    if where.handler:
        conditions.append("jobs.handler = ?")
        params.append(where.handler)
    if where.project:
        conditions.append("jobs.project = ?")
        params.append(where.project)
    if where.tag:
        conditions.append(f"(jobs.tags LIKE '%' || ? || '%' ESCAPE '{_LIKE_ESCAPE}')")
        params.append(_like_escaped(json.dumps(where.tag)))
    if where.created_after is not None:
        conditions.append("jobs.created_at >= ?")
        params.append(where.created_after)
    if where.created_before is not None:
        conditions.append("jobs.created_at < ?")
        params.append(where.created_before)
    if where.search:
        condition, values = _search(where.search)
        conditions.append(condition)
        params.extend(values)
    return conditions, params


def _search(text: str) -> tuple[str, list[Any]]:
    """As :func:`batchyard.store.jobs._search`: an id prefix as a key range, else text in ids, descriptions, tags."""
    bounds = id_prefix_range(text)
    if bounds is not None:
        low, high = bounds
        return ("jobs.id >= ? AND jobs.id < ?", [low, high]) if high is not None else ("jobs.id >= ?", [low])
    term = _like_escaped(text.lower())
    escape = f"ESCAPE '{_LIKE_ESCAPE}'"
    return (
        f"((jobs.id LIKE ? || '%' {escape}) OR (lower(jobs.description) LIKE '%' || ? || '%' {escape})"
        f" OR (lower(jobs.tags) LIKE '%' || ? || '%' {escape}))",
        [_like_escaped(text), term, term],
    )


def _like_escaped(value: str) -> str:
    """``value`` for LIKE with SQLAlchemy's ``autoescape=True``: ``/``, ``%`` and ``_`` stand for themselves."""
    e = _LIKE_ESCAPE
    return value.replace(e, e + e).replace("%", e + "%").replace("_", e + "_")


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
