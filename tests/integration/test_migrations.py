"""The Alembic migrations create exactly the tables the code declares, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

import batchyard
from batchyard.store import Store
from batchyard.store.schema import metadata


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.upgrade()
        store.upgrade()  # idempotent
        assert store.revision() == _head_revision()
        with store.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        store.close()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(batchyard.__file__).parent / "migrations"))
    return config


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def test_0002_signs_out_the_sessions_that_cannot_name_their_key(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import insert, inspect, text

    store = Store(database_url)
    try:
        store.upgrade()
        with store.db.write() as conn:  # back to 0001 (the downgrade works), as a database made before 0002
            config = _config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with store.db.read() as conn:
            assert "api_key_id" not in {c["name"] for c in inspect(conn).get_columns("sessions")}
        with store.db.write() as conn:
            conn.execute(
                insert(metadata.tables["sessions"]).values(
                    token_hash="h", owner="alice", role="member", csrf_token="c", created_at=0.0, expires_at=1e12
                )
            )
        store.upgrade()
        with store.db.read() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar() == 0
            columns = {c["name"] for c in inspect(conn).get_columns("sessions")}
        assert "api_key_id" in columns
    finally:
        store.close()


def test_the_head_read_from_the_file_names_is_alembics() -> None:
    """upgrade_schema skips Alembic for a database at head_revision(): it must be Alembic's head."""
    from batchyard.store.sqlite_reads import head_revision

    assert head_revision() == _head_revision()


@pytest.mark.postgres
def test_items_leave_room_for_in_place_updates_on_postgres(postgres_url: str) -> None:
    """``items`` has fillfactor 50 whether the database was created from schema.py or by the migrations."""
    from alembic import command
    from sqlalchemy import text

    def items_options() -> list[str]:
        with store.db.read() as conn:
            return list(conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'items'")).scalar_one())

    store = Store(postgres_url)
    try:
        store.upgrade()
        assert items_options() == ["fillfactor=50"]  # the test template is created from schema.py
        with store.db.write() as conn:
            config = _config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            command.upgrade(config, "head")
        assert items_options() == ["fillfactor=50"]
    finally:
        store.close()


def test_0006_gives_the_failed_items_already_there_their_error_signature(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from batchyard.core.errorsig import error_signature

    store = Store(database_url)
    try:
        store.upgrade()
        with store.db.write() as conn:  # back to 0005, as a database made before error signatures
            config = _config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
        error = '{"type": "LookupError", "message": "user 7 not found"}'
        with store.db.write() as conn:
            for seq, status in enumerate(["failed", "succeeded", "failed", "queued"]):
                conn.execute(
                    text(
                        "INSERT INTO items (job_id, seq, key, payload, status, attempts, error) "
                        "VALUES ('job_x', :seq, :key, '{}', :status, 1, :error)"
                    ),
                    {"seq": seq, "key": f"k{seq}", "status": status, "error": error if status == "failed" else None},
                )
        store.upgrade()
        with store.db.read() as conn:
            rows = conn.execute(text("SELECT seq, error_signature FROM items ORDER BY seq")).all()
        expected = error_signature({"type": "LookupError", "message": "user 1 not found"})
        assert [tuple(r) for r in rows] == [(0, expected), (1, None), (2, expected), (3, None)]
    finally:
        store.close()
