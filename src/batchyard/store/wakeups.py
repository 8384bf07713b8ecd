"""Wake-ups: how a write that makes work tells idle workers, in this process and (PostgreSQL) in every other."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Connection, text

from batchyard.store.engine import Database

NOTIFY_CHANNEL = "batchyard_work"


class Wakeups:
    """Shared by the store's parts that create or requeue work (jobs, items handed back for a retry)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_wake(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when this process creates or requeues work; returns a remover."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def wake_workers(self, conn: Connection) -> None:
        """Inside the transaction that made work: PostgreSQL delivers the NOTIFY to every LISTENing worker when
        it commits (and drops it if it rolls back)."""
        if self.db.is_postgres:
            conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

    def after_commit_wake(self) -> None:
        """After that transaction committed: wake the workers of this process."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()
