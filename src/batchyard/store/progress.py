"""Progress inside items (``ctx.progress``): the latest report of each running item, written by its worker in one
transaction per flush, read per page of jobs as the sum of their fractions and the few latest reports.

A report counts only while its item is running under the lease it was made in (every read joins ``items`` on the
lease token), so a report left behind by an earlier attempt, a crashed worker or a write that lost a race with
the item's completion is never shown; :meth:`ProgressStore.clear_stale` deletes such rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, exists, func, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from batchyard.core.lifecycle import LIVE_JOB_STATUSES, ItemStatus
from batchyard.core.records import MAX_CURRENT_ITEMS, ItemProgress, ProgressReport, RunningProgress
from batchyard.store.engine import Database
from batchyard.store.schema import item_progress, items, jobs

# A report is live while its item runs under the same lease.
_live = and_(
    items.c.job_id == item_progress.c.job_id,
    items.c.seq == item_progress.c.seq,
    items.c.lease_token == item_progress.c.lease_token,
    items.c.status == ItemStatus.RUNNING,
)


def partial_of(job_id: ColumnElement[str]) -> Any:
    """SQL: the sum of the fractions done that a job's running items reported (0 when none did)."""
    return (
        select(func.coalesce(func.sum(item_progress.c.fraction), 0.0))
        .select_from(item_progress.join(items, _live))
        .where(item_progress.c.job_id == job_id)
        .scalar_subquery()
    )


class ProgressStore:
    """``store.progress``: running items' reports."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, reports: Sequence[ProgressReport], finished: Sequence[tuple[str, int]] = ()) -> None:
        """Write the latest report of each item (replacing its previous one) and delete the rows of ``finished``
        items (job id, seq), in one transaction; the jobs reported on count as active (the live feed sends them)."""
        if not reports and not finished:
            return
        with self.db.write() as conn:
            now = self.db.now(conn)
            if reports:
                self._upsert(conn, reports)
                touched = sorted({r.job_id for r in reports})
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(touched), jobs.c.status.in_(LIVE_JOB_STATUSES))
                    .values(last_activity_at=now)
                )
            if finished:
                conn.execute(
                    delete(item_progress).where(
                        tuple_(item_progress.c.job_id, item_progress.c.seq).in_([tuple(key) for key in finished])
                    )
                )

    def _upsert(self, conn: Connection, reports: Sequence[ProgressReport]) -> None:
        rows = [
            {
                "job_id": r.job_id,
                "seq": r.seq,
                "lease_token": r.lease_token,
                "done": r.done,
                "total": r.total,
                "fraction": r.fraction,
                "message": r.message,
                "updated_at": r.at,
            }
            for r in reports
        ]
        stmt: Any
        if self.db.is_postgres:  # imported here: a SQLite process never loads the PostgreSQL dialect
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt = postgresql_insert(item_progress)
        else:
            stmt = sqlite_insert(item_progress)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[item_progress.c.job_id, item_progress.c.seq],
            set_={
                name: excluded[name] for name in ("lease_token", "done", "total", "fraction", "message", "updated_at")
            },
        )
        conn.execute(stmt, rows)

    def running(self, job_ids: Sequence[str], limit: int = MAX_CURRENT_ITEMS) -> dict[str, RunningProgress]:
        """Per job (those with live reports only): the sum of fractions and the ``limit`` latest reports. One
        statement (window functions), so the sum and the reports are of the same moment."""
        if not job_ids:
            return {}
        by_job = item_progress.c.job_id
        latest = (
            select(
                by_job,
                items.c.key,
                item_progress.c.done,
                item_progress.c.total,
                item_progress.c.message,
                item_progress.c.updated_at,
                func.row_number()
                .over(partition_by=by_job, order_by=(item_progress.c.updated_at.desc(), items.c.seq))
                .label("rank"),
                func.coalesce(func.sum(item_progress.c.fraction).over(partition_by=by_job), 0.0).label("partial"),
            )
            .select_from(item_progress.join(items, _live))
            .where(by_job.in_(list(job_ids)))
            .subquery()
        )
        with self.db.read() as conn:
            rows = conn.execute(
                select(latest).where(latest.c.rank <= limit).order_by(latest.c.job_id, latest.c.rank)
            ).all()
        partial: dict[str, float] = {}
        current: dict[str, list[ItemProgress]] = {}
        for row in rows:
            partial[row.job_id] = float(row.partial)
            current.setdefault(row.job_id, []).append(
                ItemProgress(row.key, row.done, row.total, row.message, row.updated_at)
            )
        return {job_id: RunningProgress(partial[job_id], tuple(reports)) for job_id, reports in current.items()}

    def clear_stale(self, limit: int = 1000) -> int:
        """Delete reports whose item no longer runs under their lease (finished, retried, its worker died)."""
        with self.db.write() as conn:
            stale = select(item_progress.c.job_id, item_progress.c.seq).where(~exists().where(_live)).limit(limit)
            keys = [tuple(row) for row in conn.execute(stale).all()]
            if keys:
                conn.execute(delete(item_progress).where(tuple_(item_progress.c.job_id, item_progress.c.seq).in_(keys)))
            return len(keys)
