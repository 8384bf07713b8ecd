"""Store: stats (being built)."""

from __future__ import annotations

from batchyard.store.engine import Database


class StatsStore:
    db: Database
