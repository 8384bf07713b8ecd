"""The store: all SQL lives here, behind a small domain-shaped surface (claim, complete, heartbeat, rescue,
transition, list). Policy lives in :mod:`batchyard.services`.

A :class:`Store` is one database and the parts that speak to it, each a small class over the shared
:class:`~batchyard.store.engine.Database`: ``store.jobs``, ``store.items``, ``store.claims``, ``store.workers``,
``store.upkeep``, ``store.auth``, ``store.uploads``, ``store.stats``, ``store.retention``, ``store.progress``,
``store.quotas``, ``store.outbox``, ``store.webhooks``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchyard.store.auth import AuthStore
    from batchyard.store.claims import ClaimStore
    from batchyard.store.engine import Database
    from batchyard.store.items import ItemStore
    from batchyard.store.jobs import JobStore
    from batchyard.store.maintenance import UpkeepStore
    from batchyard.store.outbox import OutboxStore
    from batchyard.store.progress import ProgressStore
    from batchyard.store.quotas import QuotaStore
    from batchyard.store.retention import RetentionStore
    from batchyard.store.stats import StatsStore
    from batchyard.store.uploads import UploadStore
    from batchyard.store.wakeups import Wakeups
    from batchyard.store.webhooks import WebhookStore
    from batchyard.store.workers import WorkerStore

# The package imports SQLAlchemy when a Store is made (or NOTIFY_CHANNEL is read), not when any of its modules is
# imported: store/sqlite_reads.py (the CLI's quick reads) uses the standard library's sqlite3 only.


def __getattr__(name: str) -> Any:
    if name == "NOTIFY_CHANNEL":
        from batchyard.store.wakeups import NOTIFY_CHANNEL

        return NOTIFY_CHANNEL
    raise AttributeError(f"module 'batchyard.store' has no attribute {name!r}")


class Store:
    """One database: SQLite (one machine) or PostgreSQL (many)."""

    def __init__(self, url: str) -> None:
        from batchyard.store.auth import AuthStore
        from batchyard.store.claims import ClaimStore
        from batchyard.store.engine import Database
        from batchyard.store.items import ItemStore
        from batchyard.store.jobs import JobStore
        from batchyard.store.maintenance import UpkeepStore
        from batchyard.store.outbox import OutboxStore
        from batchyard.store.progress import ProgressStore
        from batchyard.store.quotas import QuotaStore
        from batchyard.store.retention import RetentionStore
        from batchyard.store.stats import StatsStore
        from batchyard.store.uploads import UploadStore
        from batchyard.store.wakeups import Wakeups
        from batchyard.store.webhooks import WebhookStore
        from batchyard.store.workers import WorkerStore

        self.db: Database = Database(url)
        db = self.db
        self.wakeups: Wakeups = Wakeups(db)
        self.jobs: JobStore = JobStore(db, self.wakeups)
        self.items: ItemStore = ItemStore(db)
        self.claims: ClaimStore = ClaimStore(db)
        self.workers: WorkerStore = WorkerStore(db)
        self.upkeep: UpkeepStore = UpkeepStore(db)
        self.auth: AuthStore = AuthStore(db)
        self.uploads: UploadStore = UploadStore(db)
        self.stats: StatsStore = StatsStore(db)
        self.retention: RetentionStore = RetentionStore(db)
        self.progress: ProgressStore = ProgressStore(db)
        self.quotas: QuotaStore = QuotaStore(db, self.wakeups)
        self.outbox: OutboxStore = OutboxStore(db)
        self.webhooks: WebhookStore = WebhookStore(db, self.outbox)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def is_postgres(self) -> bool:
        return self.db.is_postgres

    def upgrade(self) -> None:
        from batchyard.store.engine import upgrade_schema

        upgrade_schema(self.db)

    def revision(self) -> str | None:
        from batchyard.store.engine import schema_revision

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
