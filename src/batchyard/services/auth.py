"""Who is asking, and what they may do: API keys, roles, sessions and one-time login tokens.

Keys look like ``by_<40 random characters>``; only their SHA-256 is stored (a key has 240 bits of entropy, so a
slow hash adds nothing). Roles: ``admin`` sees and changes everything of every owner; ``member`` sees and changes
its own owner's jobs and files; ``viewer`` only reads its own. Another owner's data is reported as missing (404),
exactly like a wrong id, so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from batchyard.core.records import ApiKeyRecord
from batchyard.core.roles import Role
from batchyard.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.store import Store

KEY_PREFIX = "by_"
SESSION_TTL_SECONDS = 12 * 3600.0
LOGIN_TOKEN_TTL_SECONDS = 15 * 60.0  # a login link is for opening the dashboard now, not tomorrow
MAX_OWNER_CHARS = 200


# What a request authenticated with, to check later that it still holds (an open stream re-checks it):
# ("key", api key id) or ("session", hash of the session token).
Credential = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: an owner with a role, and the credential it proved that with (None: local)."""

    owner: str
    role: Role
    via: str = "key"  # "key" | "session" | "local"
    credential: Credential | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see(self, owner: str) -> bool:
        return self.is_admin or owner == self.owner

    def owner_scope(self, requested: str | None = None) -> str | None:
        """The owner whose data a listing covers: for an admin ``requested`` (None: every owner), for anyone
        else always their own owner, whatever they asked for."""
        return requested if self.is_admin else self.owner

    def owner_filter(self, requested: str | None = None, what: str = "jobs") -> str | None:
        """Like :meth:`owner_scope`, but a non-admin naming another owner is refused (Forbidden) instead of
        silently shown their own: a filter, an export or a bulk action must cover exactly what was asked."""
        if not self.is_admin and requested is not None and requested != self.owner:
            raise Forbidden(
                f"only an admin can see another owner's {what}; leave out `owner` to see your own", param="owner"
            )
        return self.owner_scope(requested)

    def require_write(self) -> None:
        if self.role is Role.VIEWER:
            raise Forbidden("this key can only read (role viewer)")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("only an admin may do this")

    def check_owner(self, owner: str, what: str, param: str | None = None) -> None:
        """Raise NotFound (never 403) for something owned by someone else, worded (``what``, ``param``) exactly
        like the error for a missing one."""
        if not self.can_see(owner):
            raise NotFound(f"no {what}", param=param)


LOCAL_ADMIN = Principal("local", Role.ADMIN, "local")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_owner_name(owner: str) -> str:
    owner = owner.strip()
    if not owner or len(owner) > MAX_OWNER_CHARS or any(c.isspace() for c in owner):
        raise InvalidRequest(f"an owner is 1 to {MAX_OWNER_CHARS} characters without spaces", param="owner")
    return owner


class AuthService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create_key(self, owner: str, role: Role | str, name: str | None = None) -> tuple[str, ApiKeyRecord]:
        """A new key: (the key, shown once; its record). The key itself is not kept."""
        key = KEY_PREFIX + secrets.token_urlsafe(30)
        record = self.store.auth.add_api_key(
            f"key_{secrets.token_hex(8)}", key[:11], hash_secret(key), check_owner_name(owner), Role(role).value, name
        )
        return key, record

    def authenticate_key(self, key: str) -> Principal:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            raise Unauthenticated("invalid API key")
        record = self.store.auth.find_api_key(hash_secret(key))
        if record is None:
            raise Unauthenticated("invalid or revoked API key")
        return Principal(record.owner, Role(record.role), "key", ("key", record.id))

    def create_login_token(self, owner: str = "local", role: Role = Role.ADMIN) -> str:
        """A one-time login token, valid LOGIN_TOKEN_TTL_SECONDS; every earlier token stops working."""
        token = secrets.token_urlsafe(24)
        self.store.auth.add_login_token(hash_secret(token), owner, role.value, LOGIN_TOKEN_TTL_SECONDS)
        return token

    def start_session(self, principal: Principal) -> tuple[str, str]:
        """(session token for the cookie, CSRF token for the page). A session signed in with an API key ends
        when that key is revoked."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        key_id = principal.credential[1] if principal.credential and principal.credential[0] == "key" else None
        self.store.auth.add_session(
            hash_secret(token), principal.owner, principal.role.value, csrf, SESSION_TTL_SECONDS, api_key_id=key_id
        )
        return token, csrf

    def login_with_token(self, login_token: str) -> Principal:
        found = self.store.auth.use_login_token(hash_secret(login_token))
        if found is None:
            raise Unauthenticated(
                "this login link was already used, has expired or was replaced by a newer one; "
                "restart the server for a new one or sign in with an API key"
            )
        return Principal(found[0], Role(found[1]), "session")

    def session(self, token: str, csrf_header: str | None, *, state_changing: bool) -> Principal:
        token_hash = hash_secret(token)
        record = self.store.auth.find_session(token_hash)
        if record is None:
            raise Unauthenticated("session expired or ended; sign in again")
        if state_changing and not (csrf_header and hmac.compare_digest(csrf_header, record.csrf_token)):
            raise Forbidden("missing or wrong X-CSRF-Token header")
        return Principal(record.owner, Role(record.role), "session", ("session", token_hash))

    def ended(self, credentials: Iterable[Credential]) -> set[Credential]:
        """Those of ``credentials`` that no longer hold: a revoked (or deleted) key, a session signed out, ended
        by its key's revocation, or expired. Two queries however many there are."""
        wanted = set(credentials)
        key_ids = {value for kind, value in wanted if kind == "key"}
        session_hashes = {value for kind, value in wanted if kind == "session"}
        live = {("key", k) for k in self.store.auth.live_api_keys(key_ids)} | {
            ("session", h) for h in self.store.auth.live_sessions(session_hashes)
        }
        return wanted - live

    def csrf_token(self, token: str) -> str | None:
        record = self.store.auth.find_session(hash_secret(token))
        return None if record is None else record.csrf_token

    def end_session(self, token: str) -> None:
        self.store.auth.delete_session(hash_secret(token))


__all__ = [
    "KEY_PREFIX",
    "LOCAL_ADMIN",
    "LOGIN_TOKEN_TTL_SECONDS",
    "MAX_OWNER_CHARS",
    "SESSION_TTL_SECONDS",
    "AuthService",
    "Credential",
    "Principal",
    "Role",
    "check_owner_name",
    "hash_secret",
]
