"""The store: all SQL lives here, behind a small domain-shaped surface (claim, complete, heartbeat, rescue,
transition, list). Policy lives in :mod:`batchyard.services.jobs`."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Connection, text

from batchyard.store.auth import AuthStore
from batchyard.store.claims import ClaimStore
from batchyard.store.engine import Database, schema_revision, upgrade_schema
from batchyard.store.jobs import JobStore
from batchyard.store.maintenance import MaintenanceStore
from batchyard.store.stats import StatsStore
from batchyard.store.uploads import FilesStore

NOTIFY_CHANNEL = "batchyard_work"


class Store(ClaimStore, JobStore, MaintenanceStore, AuthStore, FilesStore, StatsStore):
    """One database: SQLite (one machine) or PostgreSQL (many)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self._wake_callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.db.url

    def upgrade(self) -> None:
        upgrade_schema(self.db)

    def revision(self) -> str | None:
        return schema_revision(self.db)

    def close(self) -> None:
        self.db.dispose()

    # -- wake-ups ---------------------------------------------------------------------------------------------

    def on_wake(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when this process creates or requeues work; returns a remover."""
        with self._lock:
            self._wake_callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._wake_callbacks:
                    self._wake_callbacks.remove(callback)

        return remove

    def wake_workers(self, conn: Connection) -> None:
        if self.db.is_postgres:  # delivered to every LISTENing worker when the transaction commits
            conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

    def after_commit_wake(self) -> None:
        with self._lock:
            callbacks = list(self._wake_callbacks)
        for callback in callbacks:
            callback()


__all__ = ["NOTIFY_CHANNEL", "Store"]
