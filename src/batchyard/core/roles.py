"""The roles an API key or session has: ``admin`` sees and changes every owner's data, ``member`` its own owner's,
``viewer`` only reads its own owner's. What each may do is decided in :mod:`batchyard.services.auth`."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
