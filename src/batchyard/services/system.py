"""The system as callers see it: is the database reachable, which workers are live (and who may know where),
which handlers exist."""

from __future__ import annotations

import hashlib

from batchyard.errors import StoreUnavailable
from batchyard.registry import HandlerRegistry
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.settings import Settings
from batchyard.store import Store
from batchyard.wire import HandlerOut, WorkerJobOut, WorkerOut


class SystemService:
    def __init__(self, store: Store, settings: Settings, registry: HandlerRegistry) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        try:
            self.store.db.ping()
        except StoreUnavailable:
            raise
        except Exception as exc:  # any driver failure means "not ready"
            raise StoreUnavailable(f"database not reachable: {exc}") from exc

    def workers(self, principal: Principal = LOCAL_ADMIN, *, recent_seconds: float | None = None) -> list[WorkerOut]:
        """Live workers, as sent, each with whether it is alive and the jobs it holds items of now; with
        ``recent_seconds``, also those stopped or lost within that many seconds. Where the servers run is the
        operator's business: for anyone but an admin a worker's id is a stable alias, its host and pid are null,
        and only their own jobs are listed in what it runs."""
        stale = self.settings.worker_stale_seconds
        if recent_seconds is None:
            records = self.store.workers.list_workers(live_within=stale)
        else:
            records = self.store.workers.list_workers(seen_within=max(recent_seconds, stale))
        held = self.store.workers.held_by_worker()
        now = self.store.stats.database_clock()
        out = []
        for record in records:
            alive = record.status in ("running", "stopping") and record.last_seen_at >= now - stale
            running = [
                {"job_id": job_id, "handler": handler, "items": items}
                for job_id, owner, handler, items in held.get(record.id, [])
                if principal.can_see(owner)
            ]
            worker = WorkerOut.of(record).model_copy(update={"alive": alive})
            worker = worker.model_copy(update={"running": [WorkerJobOut.model_validate(r) for r in running]})
            if not principal.is_admin:
                worker = worker.model_copy(
                    update={
                        "id": worker_alias(worker.id),
                        "host": None,
                        "pid": None,
                        "jobs": None if worker.jobs is None else [],
                    }
                )
            out.append(worker)
        return out

    def handlers(self) -> list[HandlerOut]:
        """Every handler registered here or served by a live worker, with how many live workers serve it. A
        worker limited to some jobs (``Job.wait``'s in-process one) serves no handler as a whole."""
        workers = [
            w for w in self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds) if w.jobs is None
        ]
        out = []
        for name in sorted(set(self.registry.names()) | {h for w in workers for h in w.handlers}):
            serving = sum(1 for w in workers if name in w.handlers)
            if name in self.registry:
                spec = self.registry.get(name)
                out.append(
                    HandlerOut(
                        name=name,
                        description=spec.description,
                        is_async=spec.is_async,
                        concurrency=spec.concurrency,
                        max_attempts=spec.max_attempts,
                        timeout_seconds=spec.timeout_seconds,
                        live_workers=serving,
                    )
                )
            else:  # known from a worker elsewhere: nothing more is known here
                out.append(
                    HandlerOut(
                        name=name,
                        description="",
                        is_async=False,
                        concurrency=0,
                        max_attempts=None,
                        timeout_seconds=None,
                        live_workers=serving,
                    )
                )
        return out


def worker_alias(worker_id: str) -> str:
    return "worker_" + hashlib.sha256(worker_id.encode()).hexdigest()[:16]
