"""The store: all SQL lives here, behind a small domain-shaped surface (claim, complete, heartbeat, rescue,
transition, list). Policy lives in :mod:`batchyard.services`.

A :class:`Store` is one database and the parts that speak to it, each a small class over the shared
:class:`~batchyard.store.engine.Database`: ``store.jobs``, ``store.items``, ``store.claims``, ``store.workers``,
``store.upkeep``, ``store.auth``, ``store.uploads``, ``store.stats``, ``store.retention``, ``store.progress``,
``store.quotas``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from batchyard.store.auth import AuthStore
from batchyard.store.claims import ClaimStore
from batchyard.store.engine import Database, schema_revision, upgrade_schema
from batchyard.store.items import ItemStore
from batchyard.store.jobs import JobStore
from batchyard.store.maintenance import UpkeepStore
from batchyard.store.progress import ProgressStore
from batchyard.store.quotas import QuotaStore
from batchyard.store.retention import RetentionStore
from batchyard.store.stats import StatsStore
from batchyard.store.uploads import UploadStore
from batchyard.store.wakeups import NOTIFY_CHANNEL, Wakeups
from batchyard.store.workers import WorkerStore


class Store:
    """One database: SQLite (one machine) or PostgreSQL (many)."""

    def __init__(self, url: str) -> None:
        self.db = db = Database(url)
        self.wakeups = Wakeups(db)
        self.jobs = JobStore(db, self.wakeups)
        self.items = ItemStore(db)
        self.claims = ClaimStore(db)
        self.workers = WorkerStore(db)
        self.upkeep = UpkeepStore(db)
        self.auth = AuthStore(db)
        self.uploads = UploadStore(db)
        self.stats = StatsStore(db)
        self.retention = RetentionStore(db)
        self.progress = ProgressStore(db)
        self.quotas = QuotaStore(db, self.wakeups)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def is_postgres(self) -> bool:
        return self.db.is_postgres

    def upgrade(self) -> None:
        upgrade_schema(self.db)

    def revision(self) -> str | None:
        return schema_revision(self.db)

    def close(self) -> None:
        self.db.dispose()

    def on_wake(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when this process creates or requeues work; returns a remover."""
        return self.wakeups.on_wake(callback)

    def listen(self) -> AsyncIterator[None]:
        """PostgreSQL: one value per NOTIFY from any process that creates or requeues work (reconnecting)."""
        from batchyard.store.notify import listen  # psycopg's async connection, only for PostgreSQL workers

        return listen(self.url)


__all__ = ["NOTIFY_CHANNEL", "Store"]
