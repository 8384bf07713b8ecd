"""The worker registry: who is running, where, with which handlers, last seen when."""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, select, update

from batchyard.core.records import WorkerRecord
from batchyard.store.engine import Database
from batchyard.store.schema import jobs, leases, workers


class WorkerStore:
    """``store.workers``: rows a worker keeps about itself, read by the API and cleaned up by maintenance."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        handlers: list[str],
        concurrency: int,
        jobs: list[str] | None = None,
    ) -> None:
        """``jobs``: the only jobs it works on (None: any job of its handlers)."""
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
                    jobs=None if jobs is None else json.dumps(sorted(jobs)),
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

    def list_workers(self, *, live_within: float | None = None, seen_within: float | None = None) -> list[WorkerRecord]:
        """Workers, oldest first: with ``live_within``, those running and seen that recently; with ``seen_within``,
        every one seen that recently, whatever its status (stopped and lost ones too)."""
        with self.db.read() as conn:
            now = self.db.now(conn)
            query = select(workers).order_by(workers.c.started_at)
            if live_within is not None:
                query = query.where(
                    workers.c.status.in_(("running", "stopping")), workers.c.last_seen_at >= now - live_within
                )
            if seen_within is not None:
                query = query.where(workers.c.last_seen_at >= now - seen_within)
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
                None if r.jobs is None else json.loads(r.jobs),
            )
            for r in rows
        ]

    def held_by_worker(self) -> dict[str, list[tuple[str, str, str, int]]]:
        """What each worker holds now, from its leases: worker id -> [(job id, job owner, handler, items)]."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(leases.c.worker_id, leases.c.job_id, jobs.c.owner, jobs.c.handler, leases.c.seqs)
                .select_from(leases.join(jobs, jobs.c.id == leases.c.job_id))
                .order_by(leases.c.worker_id, leases.c.job_id)
            ).all()
        held: dict[str, dict[str, tuple[str, str, int]]] = {}
        for worker_id, job_id, owner, handler, seqs in rows:
            per_job = held.setdefault(worker_id, {})
            _, _, items = per_job.get(job_id, (owner, handler, 0))
            per_job[job_id] = (owner, handler, items + len(json.loads(seqs)))
        return {w: [(j, o, h, n) for j, (o, h, n) in per_job.items()] for w, per_job in held.items()}

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
