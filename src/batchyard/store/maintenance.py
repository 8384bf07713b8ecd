"""Store queries for maintenance: which jobs need their files, a threshold check, expiry, samples, workers."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, exists, insert, or_, select, update

from batchyard.core.lifecycle import AWAITING_FILES_JOB_STATUSES, LIVE_JOB_STATUSES, SAMPLED_JOB_STATUSES, JobStatus
from batchyard.core.records import WorkerRecord
from batchyard.store.engine import Database
from batchyard.store.schema import jobs, progress_samples, workers
from batchyard.store.timeline import add_event


class MaintenanceStore:
    db: Database

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
        """One (done, failed) point per running job, at most every ``min_interval`` seconds whoever records it."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            recent = exists().where(
                progress_samples.c.job_id == jobs.c.id, progress_samples.c.at > now - min_interval * 0.9
            )
            active = select(jobs.c.id, jobs.c.succeeded + jobs.c.failed + jobs.c.cancelled, jobs.c.failed).where(
                jobs.c.status.in_(SAMPLED_JOB_STATUSES), ~recent
            )
            rows = conn.execute(active).all()
            if rows:
                conn.execute(
                    insert(progress_samples), [{"job_id": r[0], "at": now, "done": r[1], "failed": r[2]} for r in rows]
                )
            return len(rows)

    # -- worker registry ----------------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int, handlers: list[str], concurrency: int) -> None:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(delete(workers).where(workers.c.id == worker_id))
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    host=host,
                    pid=pid,
                    handlers=json.dumps(sorted(handlers)),
                    concurrency=concurrency,
                    started_at=now,
                    last_seen_at=now,
                    in_flight=0,
                    status="running",
                )
            )

    def set_worker_status(self, worker_id: str, status: str) -> None:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(status=status, last_seen_at=now, in_flight=0 if status == "stopped" else workers.c.in_flight)
            )

    def list_workers(self, *, live_within: float | None = None) -> list[WorkerRecord]:
        with self.db.read() as conn:
            now = self.db.now(conn)
            query = select(workers).order_by(workers.c.started_at)
            if live_within is not None:
                query = query.where(
                    workers.c.status.in_(("running", "stopping")), workers.c.last_seen_at >= now - live_within
                )
            rows = conn.execute(query).all()
        return [
            WorkerRecord(
                r.id,
                r.host,
                r.pid,
                json.loads(r.handlers),
                r.concurrency,
                r.started_at,
                r.last_seen_at,
                r.in_flight,
                r.status,
            )
            for r in rows
        ]

    def mark_lost_workers(self, stale_after: float) -> int:
        with self.db.write() as conn:
            now = self.db.now(conn)
            return int(
                conn.execute(
                    update(workers)
                    .where(workers.c.status.in_(("running", "stopping")), workers.c.last_seen_at < now - stale_after)
                    .values(status="lost")
                ).rowcount
            )

    def prune_workers(self, older_than: float) -> None:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                delete(workers).where(
                    workers.c.status.in_(("stopped", "lost")), workers.c.last_seen_at < now - older_than
                )
            )
