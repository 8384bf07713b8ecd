"""Shared fixtures: a fresh database per test, on SQLite and (when reachable) PostgreSQL.

PostgreSQL tests skip with a clear reason when no server is reachable, but fail under ``CI=true``: CI must
exercise both backends. The server is taken from ``BATCHYARD_TEST_POSTGRES_URL`` (default: the local one).
Each test gets its own database cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batchyard import Batchyard, Settings
from tests.upstream import MockUpstreamProcess, start_mock_upstream

if TYPE_CHECKING:
    import psycopg

    from tests.smtp import SmtpServer

POSTGRES_URL = os.environ.get("BATCHYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# One template per test session, so two sessions on one server (a developer and CI) never race on it.
TEMPLATE_DB = f"batchyard_test_template_{secrets.token_hex(4)}"

_postgres_state: dict[str, str | None] = {}


def _admin_connect() -> psycopg.Connection[tuple[Any, ...]]:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)


def _postgres_unavailable() -> str | None:
    """None when PostgreSQL is usable; else why not. The template database is made once per session."""
    if "error" in _postgres_state:
        return _postgres_state["error"]
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_state["error"] = "psycopg is not installed (pip install -e '.[test]')"
        return _postgres_state["error"]
    try:
        with _admin_connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        from batchyard.store import Store

        store = Store(_db_url(TEMPLATE_DB))
        store.upgrade()
        store.close()
        _postgres_state["error"] = None
    except Exception as exc:
        _postgres_state["error"] = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return _postgres_state["error"]


def _db_url(name: str) -> str:
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def require_postgres() -> None:
    reason = _postgres_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true requires PostgreSQL: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (cloned from the template)."""
    require_postgres()
    name = f"batchyard_t_{secrets.token_hex(5)}"
    with _admin_connect() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield _db_url(name)
    finally:
        with _admin_connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batchyard.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        lease_seconds=5.0,
        poll_interval_ms=50,
        maintenance_interval_ms=100,
        flush_interval_ms=20,
        backoff_base_seconds=0.05,
        backoff_max_seconds=0.2,
        shutdown_grace_seconds=5.0,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Batchyard]:
    application = Batchyard(settings, demo_handlers=True)
    yield application
    application.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _postgres_state.get("error", "not tried") is None:
        with _admin_connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")


@pytest.fixture
def mock_upstream() -> Iterator[MockUpstreamProcess]:
    """A real ``batchyard mock-upstream`` subprocess on a free port (no latency, no injected errors); see
    tests/upstream.py for ``start_mock_upstream`` with other options."""
    with start_mock_upstream() as mock:
        yield mock


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port, plain text, keeping what it receives; see
    tests/smtp.py for ``start_smtp_server`` with STARTTLS, TLS or AUTH, and for refusing recipients."""
    from tests.smtp import start_smtp_server  # here: only tests that send email need aiosmtpd installed

    with start_smtp_server() as server:
        yield server
