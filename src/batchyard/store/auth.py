"""API keys, dashboard sessions and one-time login tokens. Only hashes of secrets are stored."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from batchyard.core.records import ApiKeyRecord, SessionRecord
from batchyard.store.engine import Database
from batchyard.store.schema import api_keys, login_tokens, sessions

KEY_TOUCH_INTERVAL_SECONDS = 60.0  # last_used_at is refreshed at most this often per key


class AuthStore:
    """``store.auth``: API keys, sessions and login tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_api_key(
        self, key_id: str, prefix: str, key_hash: str, owner: str, role: str, name: str | None
    ) -> ApiKeyRecord:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                insert(api_keys).values(
                    id=key_id, prefix=prefix, key_hash=key_hash, owner=owner, role=role, name=name, created_at=now
                )
            )
        return ApiKeyRecord(key_id, prefix, owner, role, name, now, None, None)

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The live key with this hash (revoked keys are not found); refreshes its last use now and then."""
        with self.db.read() as conn:  # one statement: this runs on every request
            row = conn.execute(
                select(api_keys, self.db.now_column.label("db_now")).where(
                    api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            return None
        now = float(row.db_now)
        if row.last_used_at is None or now - row.last_used_at > KEY_TOUCH_INTERVAL_SECONDS:
            with self.db.write() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
        return _key(row)

    def list_api_keys(self, owner: str | None = None) -> list[ApiKeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        with self.db.read() as conn:
            return [_key(r) for r in conn.execute(query)]

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _key(row)

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key and end the dashboard sessions signed in with it, in one transaction. True if the key
        was live until now."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            revoked = conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
            ).rowcount
            conn.execute(delete(sessions).where(sessions.c.api_key_id == key_id))
        return bool(revoked)

    def live_api_keys(self, key_ids: Collection[str]) -> set[str]:
        """Those of ``key_ids`` that still exist and are not revoked (one query, for open streams)."""
        if not key_ids:
            return set()
        with self.db.read() as conn:
            return set(
                conn.execute(
                    select(api_keys.c.id).where(api_keys.c.id.in_(list(key_ids)), api_keys.c.revoked_at.is_(None))
                ).scalars()
            )

    # -- sessions and one-time tokens ------------------------------------------------------------------------

    def add_login_token(self, token_hash: str, owner: str, role: str, ttl_seconds: float) -> None:
        """Record a new one-time token; every earlier one, used or not, stops working (a server restart prints a
        new link, and the links in earlier logs must not sign anyone in)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(delete(login_tokens))
            conn.execute(
                insert(login_tokens).values(
                    token_hash=token_hash, owner=owner, role=role, created_at=now, expires_at=now + ttl_seconds
                )
            )

    def use_login_token(self, token_hash: str) -> tuple[str, str] | None:
        """Spend a one-time token: (owner, role) the first time, None ever after or once expired."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            row = conn.execute(
                update(login_tokens)
                .where(
                    login_tokens.c.token_hash == token_hash,
                    login_tokens.c.used_at.is_(None),
                    login_tokens.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(login_tokens.c.owner, login_tokens.c.role)
            ).first()
        return None if row is None else (row.owner, row.role)

    def add_session(
        self, token_hash: str, owner: str, role: str, csrf_token: str, ttl_seconds: float, api_key_id: str | None = None
    ) -> None:
        """A dashboard session; ``api_key_id`` is the key signed in with (revoking it ends the session)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                insert(sessions).values(
                    token_hash=token_hash,
                    owner=owner,
                    role=role,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=now + ttl_seconds,
                    api_key_id=api_key_id,
                )
            )

    def find_session(self, token_hash: str) -> SessionRecord | None:
        with self.db.read() as conn:
            now = self.db.now(conn)
            row = conn.execute(
                select(sessions).where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now)
            ).first()
        return None if row is None else SessionRecord(row.owner, row.role, row.csrf_token, row.expires_at)

    def live_sessions(self, token_hashes: Collection[str]) -> set[str]:
        """Those of ``token_hashes`` whose session still exists and has not expired (one query, for streams)."""
        if not token_hashes:
            return set()
        with self.db.read() as conn:
            now = self.db.now(conn)
            return set(
                conn.execute(
                    select(sessions.c.token_hash).where(
                        sessions.c.token_hash.in_(list(token_hashes)), sessions.c.expires_at > now
                    )
                ).scalars()
            )

    def delete_session(self, token_hash: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))


def _key(row: Row[*tuple[Any, ...]]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(
        m["id"], m["prefix"], m["owner"], m["role"], m["name"], m["created_at"], m["last_used_at"], m["revoked_at"]
    )
