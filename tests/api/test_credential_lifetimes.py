"""What a credential opened ends with it (issue 11): revoking a key ends the dashboard sessions made from it, and
a new login link voids the earlier ones, which expire in minutes anyway. (Open streams: test_stream.py.)"""

from __future__ import annotations

from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.services.auth import LOGIN_TOKEN_TTL_SECONDS, AuthService
from batchyard.store.schema import login_tokens

from .conftest import Keys, bearer


def sign_in(client: TestClient, api_key: str) -> str:
    response = client.post("/api/v1/session", json={"api_key": api_key})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    return csrf


def test_revoking_a_key_ends_the_sessions_made_from_it(client: TestClient, app: Batchyard) -> None:
    key, record = AuthService(app.store).create_key("carol", "member")
    csrf = sign_in(client, key)
    assert client.get("/api/v1/me").json()["via"] == "session"

    assert app.store.auth.revoke_api_key(record.id)  # what `batchyard keys revoke` does

    assert client.get("/api/v1/me").status_code == 401
    response = client.post("/api/v1/jobs", json={"handler": "echo", "items": [1]}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 401
    assert client.get("/api/v1/session").status_code == 401
    assert app.store.jobs.list_jobs(owner="carol") == []


def test_revoking_a_key_over_http_ends_its_sessions_only(client: TestClient, app: Batchyard, keys: Keys) -> None:
    key, record = AuthService(app.store).create_key("alice", "member")
    sign_in(client, key)
    with TestClient(client.app) as other_browser:
        sign_in(other_browser, keys.alice)  # the same owner, another key: stays signed in
        response = client.delete(f"/api/v1/keys/{record.id}", headers=bearer(keys.root))
        assert response.status_code == 204
        assert client.get("/api/v1/me").status_code == 401
        assert other_browser.get("/api/v1/me").json() == {"owner": "alice", "role": "member", "via": "session"}


def test_a_session_from_a_login_link_survives_key_revocations(client: TestClient, app: Batchyard, keys: Keys) -> None:
    token = AuthService(app.store).create_login_token()
    assert client.post("/api/v1/session", json={"token": token}).status_code == 200
    for record in app.store.auth.list_api_keys():
        app.store.auth.revoke_api_key(record.id)
    assert client.get("/api/v1/me").json()["owner"] == "local"


def test_a_new_login_link_voids_the_unused_earlier_ones(client: TestClient, app: Batchyard) -> None:
    auth = AuthService(app.store)
    first = auth.create_login_token()  # the link the previous `batchyard serve` printed
    second = auth.create_login_token()  # ... and the one after a restart
    latest = auth.create_login_token()
    for old in (first, second):
        assert client.get(f"/login?token={old}", follow_redirects=False).status_code == 401
        assert client.post("/api/v1/session", json={"token": old}).status_code == 401
    assert client.get(f"/login?token={latest}", follow_redirects=False).status_code == 303


def test_login_links_expire_in_minutes(client: TestClient, app: Batchyard) -> None:
    assert LOGIN_TOKEN_TTL_SECONDS <= 15 * 60
    token = AuthService(app.store).create_login_token()
    with app.store.db.read() as conn:
        created_at, expires_at = conn.execute(
            login_tokens.select().with_only_columns(login_tokens.c.created_at, login_tokens.c.expires_at)
        ).one()
    assert expires_at - created_at <= 15 * 60
    with app.store.db.write() as conn:  # fifteen minutes later
        conn.execute(login_tokens.update().values(expires_at=created_at - 1))
    response = client.get(f"/login?token={token}", follow_redirects=False)
    assert response.status_code == 401 and "expired" in response.text
