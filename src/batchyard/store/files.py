"""Store: files (being built)."""

from __future__ import annotations

from batchyard.store.engine import Database


class FilesStore:
    db: Database
