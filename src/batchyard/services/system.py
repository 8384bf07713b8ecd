"""The system as callers see it: is the database reachable, which workers are live (and who may know where)."""

from __future__ import annotations

import hashlib

from batchyard.errors import StoreUnavailable
from batchyard.registry import HandlerRegistry
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.settings import Settings
from batchyard.store import Store
from batchyard.wire import WorkerOut


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

    def workers(self, principal: Principal = LOCAL_ADMIN) -> list[WorkerOut]:
        """Live workers, as sent. Where the servers run is the operator's business: for anyone but an admin a
        worker's id is a stable alias, and its host and pid are null."""
        workers = [
            WorkerOut.of(w) for w in self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds)
        ]
        if principal.is_admin:
            return workers
        return [
            w.model_copy(
                update={"id": worker_alias(w.id), "host": None, "pid": None, "jobs": None if w.jobs is None else []}
            )
            for w in workers
        ]


def worker_alias(worker_id: str) -> str:
    return "worker_" + hashlib.sha256(worker_id.encode()).hexdigest()[:16]
