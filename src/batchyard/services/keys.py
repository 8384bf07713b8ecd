"""API keys as their users manage them: list (by prefix; never the key), create (shown once), revoke.

Admins manage every owner's keys. A member may create keys for its own owner with role member or viewer and
revoke its own owner's keys; a viewer only lists its own. Someone else's key is reported as missing, exactly like
a wrong id.
"""

from __future__ import annotations

from batchyard.core.records import ApiKeyRecord
from batchyard.core.roles import Role
from batchyard.errors import NotFound
from batchyard.services.auth import LOCAL_ADMIN, AuthService, Principal
from batchyard.store import Store


class KeyService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, principal: Principal = LOCAL_ADMIN, *, owner: str | None = None) -> list[ApiKeyRecord]:
        """The keys ``principal`` may see, oldest first: an admin's of every owner (or of ``owner``), anyone
        else's of its own owner."""
        return self.store.auth.list_api_keys(principal.owner_scope(owner))

    def create(
        self,
        principal: Principal = LOCAL_ADMIN,
        *,
        owner: str | None = None,
        role: Role | str = Role.MEMBER,
        name: str | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key (shown this once) and its record. ``owner`` defaults to the caller's; a key for another
        owner, or with role admin, takes an admin."""
        principal.require_write()
        owner = owner or principal.owner
        if owner != principal.owner or Role(role) is Role.ADMIN:
            principal.require_admin()
        return AuthService(self.store).create_key(owner, role, name)

    def get(self, key_id: str, principal: Principal = LOCAL_ADMIN) -> ApiKeyRecord:
        record = self.store.auth.get_api_key(key_id)
        if record is None or not principal.can_see(record.owner):
            raise NotFound(f"no API key {key_id!r}", param="key_id")
        return record

    def revoke(self, key_id: str, principal: Principal = LOCAL_ADMIN) -> bool:
        """Revoke a key (the sessions signed in with it end too); False if it already was. NotFound if it is
        unknown or someone else's."""
        principal.require_write()
        self.get(key_id, principal)
        return self.store.auth.revoke_api_key(key_id)
