"""Store queries for maintenance: which jobs need their result files written, expiry, progress samples."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import case, exists, insert, or_, select, update

from batchyard.core.lifecycle import AWAITING_FILES_JOB_STATUSES, LIVE_JOB_STATUSES, SAMPLED_JOB_STATUSES, JobStatus
from batchyard.store.engine import Database
from batchyard.store.outbox import release_held
from batchyard.store.progress import partial_of
from batchyard.store.schema import jobs, progress_samples
from batchyard.store.timeline import add_event


class UpkeepStore:
    """``store.upkeep``: what the maintenance loop reads and writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def jobs_needing_files(self, limit: int = 10) -> list[str]:
        with self.db.read() as conn:
            now = self.db.now(conn)
            return list(
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.status.in_(AWAITING_FILES_JOB_STATUSES),
                        jobs.c.files_written_at.is_(None),
                        jobs.c.running == 0,
                        or_(jobs.c.files_lease_until.is_(None), jobs.c.files_lease_until < now),
                    )
                    .limit(limit)
                ).scalars()
            )

    def claim_files(self, job_id: str, lease_seconds: float) -> bool:
        """Take the right to write a job's result files: a lease the writer extends while it writes
        (:meth:`extend_files_lease`), so a writer that died is replaced once it stops doing so."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            return bool(
                conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.status.in_(AWAITING_FILES_JOB_STATUSES),
                        jobs.c.files_written_at.is_(None),
                        jobs.c.running == 0,
                        or_(jobs.c.files_lease_until.is_(None), jobs.c.files_lease_until < now),
                    )
                    .values(files_lease_until=now + lease_seconds)
                ).rowcount
            )

    def extend_files_lease(self, job_id: str, lease_seconds: float) -> None:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.files_written_at.is_(None))
                .values(files_lease_until=now + lease_seconds)
            )

    def files_written(self, job_id: str, files: dict[str, Any]) -> str | None:
        """Record the written files and complete a finalizing job; returns the job's status after."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            row = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id).with_for_update()).first()
            if row is None:
                return None
            values: dict[str, Any] = {
                "files_written_at": now,
                "result_files": json.dumps(files),
                "last_activity_at": now,
            }
            status = row.status
            if status == JobStatus.FINALIZING:
                values.update(status=JobStatus.COMPLETED, finished_at=now)
                status = JobStatus.COMPLETED
                add_event(conn, job_id, now, "completed", message="result files written")
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
            release_held(conn, job_id, now)
            return str(status)

    def jobs_past_expiry(self) -> list[str]:
        with self.db.read() as conn:
            now = self.db.now(conn)
            return list(
                conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.status.in_(LIVE_JOB_STATUSES), jobs.c.expires_at.is_not(None), jobs.c.expires_at <= now
                    )
                ).scalars()
            )

    def record_progress_samples(self, min_interval: float) -> int:
        """One (processed, failed, partial) point per running job, at most every ``min_interval`` seconds whoever
        records it. Processed = succeeded + failed (the ``done`` column; cancelled items are not work, see
        core/rate.py); partial = the fractions its running items reported (``ctx.progress``), summed."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            recent = exists().where(
                progress_samples.c.job_id == jobs.c.id, progress_samples.c.at > now - min_interval * 0.9
            )
            partial = case((jobs.c.running > 0, partial_of(jobs.c.id)), else_=0.0)  # no join for idle jobs
            active = select(jobs.c.id, jobs.c.succeeded + jobs.c.failed, jobs.c.failed, partial).where(
                jobs.c.status.in_(SAMPLED_JOB_STATUSES), ~recent
            )
            rows = conn.execute(active).all()
            if rows:
                conn.execute(
                    insert(progress_samples),
                    [
                        {"job_id": r[0], "at": now, "done": r[1], "failed": r[2], "partial": float(r[3] or 0.0)}
                        for r in rows
                    ],
                )
            return len(rows)
