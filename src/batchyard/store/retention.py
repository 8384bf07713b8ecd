"""Store: retention. Finished jobs past a cutoff are deleted in bounded chunks, never in one long transaction.

A job is *tombstoned* first: one short transaction deletes its row (only if it is still finished and past the
cutoff, so a retry that came in between wins) and records it in ``job_purges``. Readers see it gone at once. Then
its items, events and progress samples go in chunks of at most ``chunk`` rows, one short write transaction each
(on SQLite every other writer gets its turn between two chunks; on PostgreSQL no lock is held across chunks), and
the purge row goes last with the job's few remaining rows. Every step is idempotent, so any number of processes
may prune at once and one that dies half-way is carried on by the next.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, delete, func, insert, or_, select

from batchyard.core.lifecycle import TERMINAL_JOB_STATUSES
from batchyard.store.engine import Database
from batchyard.store.schema import (
    files,
    idempotency_keys,
    item_requeue,
    items,
    job_events,
    job_purges,
    job_usage,
    jobs,
    leases,
    progress_samples,
)

# The tables of a job's rows deleted in chunks, with the column that orders a chunk (the primary key after job_id).
CHUNKED: tuple[tuple[Table, str], ...] = (
    (items, "seq"),
    (item_requeue, "seq"),
    (job_events, "id"),
    (progress_samples, "id"),
)


class RetentionStore:
    """``store.retention``: which finished jobs are past a cutoff, and deleting them chunk by chunk."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def clock(self) -> float:
        with self.db.read() as conn:
            return self.db.now(conn)

    def _prunable(self, cutoff: float) -> list[Any]:
        """Finished (terminal) jobs that finished before ``cutoff``, with nothing running and no result-file writer
        holding them. ``created_at < cutoff`` is implied (a job finishes after it is created) and lets the
        ``ix_jobs_created`` index narrow the search to old jobs."""
        return [
            jobs.c.status.in_(sorted(TERMINAL_JOB_STATUSES)),
            jobs.c.created_at < cutoff,
            jobs.c.finished_at.is_not(None),
            jobs.c.finished_at < cutoff,
            jobs.c.running == 0,
            or_(jobs.c.files_written_at.is_not(None), jobs.c.files_lease_until.is_(None)),
        ]

    def count_prunable(self, cutoff: float) -> tuple[int, int]:
        """(jobs, items) that :meth:`prunable_jobs` would hand out, from the jobs' counters."""
        with self.db.read() as conn:
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(jobs.c.total), 0)).where(*self._prunable(cutoff))
            ).one()
        return int(row[0]), int(row[1])

    def prunable_jobs(self, cutoff: float, limit: int, after: str | None = None) -> list[str]:
        """Ids of finished jobs past ``cutoff``, in id order after ``after`` (to page through them)."""
        query = select(jobs.c.id).where(*self._prunable(cutoff)).order_by(jobs.c.id).limit(limit)
        if after is not None:
            query = query.where(jobs.c.id > after)
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def tombstone(self, job_id: str, cutoff: float) -> bool:
        """Delete the job's row if it is still prunable, and queue the rest of its rows for :meth:`delete_chunk`.
        Its idempotency keys go too (a replay must create a new job, not name a deleted one)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            owner = conn.execute(
                select(jobs.c.owner).where(jobs.c.id == job_id, *self._prunable(cutoff)).with_for_update()
            ).scalar()
            if owner is None:
                return False
            if not conn.execute(delete(jobs).where(jobs.c.id == job_id, *self._prunable(cutoff))).rowcount:
                return False
            conn.execute(insert(job_purges).values(job_id=job_id, owner=owner, queued_at=now))
            conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.owner == owner, idempotency_keys.c.job_id == job_id)
            )
            return True

    def pending_purges(self, limit: int = 100) -> list[str]:
        with self.db.read() as conn:
            return list(
                conn.execute(select(job_purges.c.job_id).order_by(job_purges.c.queued_at).limit(limit)).scalars()
            )

    def delete_chunk(self, job_id: str, chunk: int) -> tuple[int, int]:
        """Delete up to ``chunk`` rows of a tombstoned job, items first; returns (items deleted, rows deleted).
        (0, 0): nothing of it is left in the chunked tables."""
        for table, key in CHUNKED:
            column: Column[Any] = table.c[key]
            first = select(column).where(table.c.job_id == job_id).order_by(column).limit(chunk)
            with self.db.write() as conn:
                n = conn.execute(
                    delete(table).where(table.c.job_id == job_id, column.in_(first.scalar_subquery()))
                ).rowcount
            if n:
                return (n if table is items else 0), n
        return 0, 0

    def finish_purge(self, job_id: str) -> None:
        """The last rows of a tombstoned job (leases, usage: a handful) and its purge row."""
        with self.db.write() as conn:
            for table in (leases, job_usage):
                conn.execute(delete(table).where(table.c.job_id == job_id))
            conn.execute(delete(job_purges).where(job_purges.c.job_id == job_id))

    # -- expired uploads ------------------------------------------------------------------------------------

    def expired_files(self, limit: int = 100, after: str | None = None) -> list[tuple[str, int]]:
        """(id, bytes) of uploaded files past their ``expires_at``, in id order after ``after``."""
        query = select(files.c.id, files.c.bytes).order_by(files.c.id).limit(limit)
        with self.db.read() as conn:
            now = self.db.now(conn)
            query = query.where(files.c.expires_at.is_not(None), files.c.expires_at <= now)
            if after is not None:
                query = query.where(files.c.id > after)
            return [(str(i), int(b)) for i, b in conn.execute(query)]

    def delete_expired_file(self, file_id: str) -> bool:
        """Delete an uploaded file's row if it is still expired (and still there)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            return bool(
                conn.execute(
                    delete(files).where(
                        files.c.id == file_id, files.c.expires_at.is_not(None), files.c.expires_at <= now
                    )
                ).rowcount
            )
