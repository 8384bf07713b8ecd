"""API tests run the real FastAPI app in-process (Starlette's TestClient) on SQLite and PostgreSQL.

Keys: ``alice`` is a member, ``bob`` another member, ``vera`` a viewer of alice's owner, ``root`` an admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.api import create_app
from batchyard.services.auth import AuthService, Role


@dataclass(frozen=True)
class Keys:
    alice: str
    bob: str
    vera: str
    root: str


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(app: Batchyard) -> Iterator[TestClient]:
    with TestClient(create_app(batchyard=app), raise_server_exceptions=True) as test_client:
        yield test_client


@pytest.fixture
def keys(app: Batchyard) -> Keys:
    auth = AuthService(app.store)
    return Keys(
        alice=auth.create_key("alice", Role.MEMBER)[0],
        bob=auth.create_key("bob", Role.MEMBER)[0],
        vera=auth.create_key("alice", Role.VIEWER)[0],
        root=auth.create_key("root", Role.ADMIN)[0],
    )
