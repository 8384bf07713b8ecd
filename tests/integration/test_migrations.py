"""The Alembic migrations create exactly the tables the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from batchyard.schema import metadata
from batchyard.store import Store


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.upgrade()
        store.upgrade()  # idempotent
        assert store.revision() == "0001"
        with store.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        store.close()
