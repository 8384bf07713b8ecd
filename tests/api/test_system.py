"""Health, the error shape, authentication basics and dashboard sessions with CSRF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard, Settings
from batchyard.api import create_app
from batchyard.services.auth import AuthService
from batchyard.store import engine

from ..conftest import POSTGRES_URL
from ..waits import wait_until
from .conftest import Keys, bearer


def test_health_and_readiness_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_api_routes_need_a_key(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthenticated" and "Bearer" in error["message"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/me", headers=bearer("by_" + "x" * 40)).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(keys.alice)).json() == {
        "owner": "alice",
        "role": "member",
        "via": "key",
    }


def test_revoked_key_stops_working(client: TestClient, app: Batchyard) -> None:
    auth = AuthService(app.store)
    key, record = auth.create_key("carol", "member")
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 200
    assert app.store.auth.revoke_api_key(record.id)
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    assert app.store.auth.list_api_keys("carol")[0].prefix == key[:11]


@pytest.mark.postgres
def test_connections_the_database_closed_are_replaced_before_use(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL restart or idle timeout closes pooled connections; a request after a pause must not fail."""
    import psycopg

    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection counts as idle
    app = Batchyard(Settings(data_dir=tmp_path, database_url=postgres_url))
    key = AuthService(app.store).create_key("alice", "member")[0]
    try:
        with TestClient(create_app(batchyard=app)) as client:
            assert client.get("/api/v1/jobs", headers=bearer(key)).status_code == 200
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                closed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (postgres_url.rpartition("/")[2],),
                ).fetchone()
            assert closed is not None and closed[0] >= 1
            assert client.get("/api/v1/jobs", headers=bearer(key)).status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        app.close()


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_one_time_token_gives_a_session_cookie_and_csrf(client: TestClient, app: Batchyard) -> None:
    token = AuthService(app.store).create_login_token()
    response = client.post("/api/v1/session", json={"token": token})
    assert response.status_code == 200
    session = response.json()
    assert (session["owner"], session["role"]) == ("local", "admin")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/api/v1/me").json()["via"] == "session"
    assert client.get("/api/v1/session").json()["csrf_token"] == session["csrf_token"]
    # the token is single-use
    assert client.post("/api/v1/session", json={"token": token}).status_code == 401
    # a state-changing request with the cookie but without the CSRF header is refused
    assert client.delete("/api/v1/jobs/job_x").status_code == 403
    response = client.delete("/api/v1/jobs/job_x", headers={"X-CSRF-Token": session["csrf_token"]})
    assert response.status_code in (404, 405)  # past the CSRF check
    assert client.delete("/api/v1/session").status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_sign_in_with_an_api_key(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/session", json={"api_key": keys.vera})
    assert response.json()["role"] == "viewer"
    assert client.post("/api/v1/session", json={"api_key": "by_wrong"}).status_code == 401
    assert client.post("/api/v1/session", json={}).status_code == 400


def test_login_link_sets_the_cookie_once(client: TestClient, app: Batchyard) -> None:
    token = AuthService(app.store).create_login_token()
    response = client.get(f"/login?token={token}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "httponly" in response.headers["set-cookie"].lower()
    home = client.get("/")
    assert home.status_code == 200 and "Signed in as local (admin)" in home.text
    client.cookies.clear()
    spent = client.get(f"/login?token={token}")
    assert spent.status_code == 401 and "this login link was already used" in spent.text
    signed_out = client.get("/", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"


def test_keys_over_http(client: TestClient, keys: Keys) -> None:
    created = client.post("/api/v1/keys", json={"role": "viewer", "name": "ci"}, headers=bearer(keys.alice))
    assert created.status_code == 201
    new = created.json()
    assert new["owner"] == "alice" and new["key"].startswith("by_") and new["prefix"] == new["key"][:11]
    assert client.get("/api/v1/me", headers=bearer(new["key"])).json()["role"] == "viewer"
    listed = client.get("/api/v1/keys", headers=bearer(keys.alice)).json()["data"]
    assert {k["owner"] for k in listed} == {"alice"} and all("key" not in k for k in listed)
    # a member cannot mint admin keys or keys for someone else
    assert client.post("/api/v1/keys", json={"role": "admin"}, headers=bearer(keys.alice)).status_code == 403
    assert client.post("/api/v1/keys", json={"owner": "bob"}, headers=bearer(keys.alice)).status_code == 403
    assert client.post("/api/v1/keys", json={}, headers=bearer(keys.vera)).status_code == 403
    # bob cannot see or revoke alice's keys; alice can
    assert client.delete(f"/api/v1/keys/{new['id']}", headers=bearer(keys.bob)).status_code == 404
    assert client.delete(f"/api/v1/keys/{new['id']}", headers=bearer(keys.alice)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(new["key"])).status_code == 401
    admin_made = client.post("/api/v1/keys", json={"owner": "dave", "role": "admin"}, headers=bearer(keys.root))
    assert admin_made.status_code == 201 and admin_made.json()["owner"] == "dave"
    assert len(client.get("/api/v1/keys", headers=bearer(keys.root)).json()["data"]) >= 6


def test_request_bodies_are_bounded(client: TestClient, app: Batchyard, keys: Keys) -> None:
    limit = app.settings.max_request_bytes
    big = {"handler": "echo", "items": ["x" * 1000] * (limit // 1000 + 10)}
    response = client.post("/api/v1/jobs", json=big, headers=bearer(keys.alice))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"] == []


def test_no_wildcard_cors(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/me", headers={**bearer(keys.alice), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_nul_bytes_are_never_a_server_error(client: TestClient, keys: Keys) -> None:
    """PostgreSQL text cannot hold NUL: values carrying one must be refused as the client's mistake (400)."""
    h = bearer(keys.alice)
    for response in (
        client.get("/api/v1/jobs/job_%00x", headers=h),
        client.get("/api/v1/jobs?handler=a%00b", headers=h),
        client.get("/api/v1/jobs?q=%00", headers=h),
        client.post("/api/v1/jobs", json={"handler": "echo", "items": [{"n": "a\u0000b"}]}, headers=h),
        client.post("/api/v1/jobs", json={"handler": "echo", "items": [1], "description": "x\u0000"}, headers=h),
    ):
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["error"]["code"] in ("invalid_value", "not_found", "invalid_request")


def test_a_repeated_single_valued_query_parameter_is_refused(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.root)
    response = client.get("/api/v1/jobs?owner=alice&owner=bob", headers=h)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "owner"
    assert client.get("/api/v1/jobs?status=queued&status=failed", headers=h).status_code == 200  # a list param


def test_a_crashed_built_in_worker_is_not_ready_and_is_restarted(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve's worker crashing (a bug in one of its tasks) must not leave the server half alive: /readyz says
    so, a new worker starts after a backoff, and jobs submitted meanwhile still finish."""
    from batchyard.api import app as api_module

    monkeypatch.setattr(api_module, "RESTART_FIRST_DELAY", 1.5)
    monkeypatch.setattr(app.settings, "lease_seconds", 0.6)
    real = app.store.claims.heartbeat
    calls = {"n": 0}

    def heartbeat_failing_once(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("a bug in the heartbeat")
        real(*args)

    monkeypatch.setattr(app.store.claims, "heartbeat", heartbeat_failing_once)
    with TestClient(create_app(batchyard=app, run_workers=True)) as client:
        wait_until(lambda: client.get("/readyz").status_code != 200, timeout=10, what="the crash to show in /readyz")
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "worker_crashed"
        job = app.submit("echo", [{"n": i} for i in range(5)])  # while no worker runs
        # the restarted worker finishes it
        wait_until(lambda: app.service.get(job.id).finished, timeout=30, what="a restarted worker to finish the job")
        assert app.service.get(job.id).job.succeeded == 5
        assert client.get("/readyz").json() == {"status": "ready"}
    statuses = sorted(w.status for w in app.store.workers.list_workers())
    assert statuses == ["crashed", "stopped"]
