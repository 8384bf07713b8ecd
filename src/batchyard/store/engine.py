"""Engines for SQLite and PostgreSQL, the database clock, transactions and schema upgrades."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Float, create_engine, event, literal_column, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DisconnectionError, InterfaceError, OperationalError

from batchyard.errors import ConfigError, InvalidValue, StoreUnavailable
from batchyard.store.sqlite_reads import head_revision

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable across process crashes; WAL makes it safe against corruption
    "PRAGMA busy_timeout=60000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)
_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"
_POSTGRES_NOW = "extract(epoch from clock_timestamp())::float8"
WRITE_LOCK_TIMEOUT_SECONDS = 60.0  # as long as SQLite's own busy_timeout, above
PING_AFTER_IDLE_SECONDS = 2.0


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and pin them to the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_store_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("PostgreSQL needs psycopg 3: pip install 'batchyard[postgres]'") from exc
        engine = create_engine(url, pool_size=8, max_overflow=8)
        _ping_after_idle(engine)
        return engine
    raise ConfigError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path or postgresql://..."
    )


def _ping_after_idle(engine: Engine) -> None:
    """Check that a pooled connection still works before using it, if it sat unused for a while.

    A connection the server closed (a restart, an idle timeout) would otherwise fail the request that draws it.
    SQLAlchemy's ``pool_pre_ping`` checks on every checkout: one more round trip per transaction, three or four
    per API request, which cost 10-15 % of the requests a busy server answered. A connection in steady use was
    working milliseconds ago; one that was idle is checked, and replaced if it is gone. After a failure SQLAlchemy
    also replaces every connection older than it, so a restart costs at most the transactions in flight.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # the ping began a transaction; the caller's starts afresh
        except Exception as exc:
            raise DisconnectionError(f"pooled connection lost: {exc}") from exc  # the pool takes a fresh one


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be shared by workers; give a file path")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads then writes can fail with
        # SQLITE_BUSY regardless of busy_timeout. Readers stay deferred so they never wait for a writer.
        if conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """The engine plus the few things every store method needs: transactions and the database clock."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_store_engine(self.url)
        self.dialect = self.engine.dialect.name
        self.is_postgres = self.dialect == "postgresql"
        now_sql = _POSTGRES_NOW if self.is_postgres else _SQLITE_NOW
        self._now_sql = text(f"SELECT {now_sql}")
        self.now_column = literal_column(now_sql, Float)  # the clock inside another query: one round trip
        # SQLite has one writer at a time. Left to SQLite, the threads of this process that want to write (API
        # requests, the worker's claims and flushes) would wait in its busy handler, which sleeps and retries
        # with growing naps (up to 100 ms) and lets a newcomer overtake a waiter: under load a request waited
        # seconds for its turn. Here they queue on a lock instead and start the moment the writer before them
        # commits. Other processes still meet in SQLite's busy handler.
        self._write_lock = None if self.is_postgres else threading.RLock()
        # Errors that mean "the database is not usable right now", raised by SQLAlchemy or, on the hot path
        # where we use the driver directly, by the driver itself.
        self.unavailable_errors = _unavailable_errors(self.is_postgres)
        # Errors that mean "the database refused a value": only a request can carry one in.
        self.refused_value_errors = _refused_value_errors(self.is_postgres)

    @contextlib.contextmanager
    def write(self, *, relaxed: bool = False) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite).

        ``relaxed`` (claims and completions) skips waiting for the WAL flush on PostgreSQL: if the server
        itself crashes, the last few hundred milliseconds of claims/completions can be lost, which only
        means those items run again; at-least-once holds and nothing is corrupted.
        """
        with self._writer_turn():
            try:
                with self.engine.begin() as conn:
                    if relaxed and self.is_postgres:
                        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield conn
            except self.unavailable_errors as exc:
                raise StoreUnavailable(f"database unavailable: {_reason(exc)}") from exc
            except self.refused_value_errors as exc:
                raise InvalidValue() from exc

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Wait for this process's turn to write (SQLite only). Re-entrant: a write nested in another on the same
        thread goes on to SQLite, whose busy timeout ends it as before instead of a deadlock here."""
        if self._write_lock is None:
            yield
            return
        if not self._write_lock.acquire(timeout=WRITE_LOCK_TIMEOUT_SECONDS):
            raise StoreUnavailable("database unavailable: database is locked")
        try:
            yield
        finally:
            self._write_lock.release()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction (deferred on SQLite, so it never waits for a writer)."""
        try:
            with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
                yield conn
        except self.unavailable_errors as exc:
            raise StoreUnavailable(f"database unavailable: {_reason(exc)}") from exc
        except self.refused_value_errors as exc:
            raise InvalidValue() from exc

    @staticmethod
    def driver(conn: Connection) -> Any:
        """The driver's own connection inside this transaction (sqlite3 or psycopg), for the hot path."""
        return conn.connection.driver_connection

    def now(self, conn: Connection) -> float:
        """Epoch seconds from the database clock, so leases agree across machines."""
        return float(conn.execute(self._now_sql).scalar_one())

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _unavailable_errors(postgres: bool) -> tuple[type[Exception], ...]:
    if postgres:
        import psycopg

        return (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
    import sqlite3

    return (OperationalError, InterfaceError, sqlite3.OperationalError)


def _refused_value_errors(postgres: bool) -> tuple[type[Exception], ...]:
    if postgres:
        import psycopg

        return (DataError, psycopg.DataError)
    import sqlite3

    return (DataError, sqlite3.DataError)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade_schema(db: Database, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (idempotent; safe when several processes start at once).

    A database already at the head is left alone without importing Alembic, which costs a short CLI command
    (``batchyard jobs list``) more than the command itself."""
    if revision == "head" and schema_revision(db) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.write() as conn:
        if db.is_postgres:
            # Two processes upgrading at once would race on CREATE TABLE; the advisory lock serialises them.
            conn.execute(text("SELECT pg_advisory_xact_lock(724519)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def schema_revision(db: Database) -> str | None:
    """The database's migration revision (Alembic's ``alembic_version`` table), None before the first one."""
    with db.read() as conn:
        if not sa_inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)
