"""Security headers, no-store on secrets, what non-admins may learn about the servers, and strict request
bodies (issue 11 #11)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.errors import StoreUnavailable
from batchyard.services.auth import AuthService

from .conftest import Keys, bearer


def test_every_response_says_nosniff(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    h = bearer(keys.alice)
    for response in (
        client.get("/healthz"),
        client.get("/api/v1/me"),
        client.get("/api/v1/me", headers=h),
        client.get("/api/v1/jobs", headers=h),
        client.get("/nowhere"),
        client.get("/"),
        client.get(f"/api/v1/jobs/{job.id}/results.jsonl", headers=h),
        client.get("/openapi.json"),
        client.post("/api/v1/jobs", content=b"{", headers={**h, "Content-Type": "application/json"}),
        client.get("/docs"),
        client.get("/login"),
    ):
        assert response.headers.get("x-content-type-options") == "nosniff", response.request.url


def test_html_pages_cannot_be_framed_and_have_a_content_security_policy(client: TestClient, app: Batchyard) -> None:
    token = AuthService(app.store).create_login_token()
    for response in (
        client.get("/"),
        client.get("/login"),
        client.get(f"/login?token={token}"),
        client.get("/login?token=spent"),
    ):
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["x-frame-options"] == "DENY"
    policy = docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):  # what /docs loads today must still load
        assert asset in docs.text
    assert "https://" not in policy  # its assets come from this server (tests/api/test_docs_offline.py)


def test_json_answers_are_not_given_an_html_policy(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/me", headers=bearer(keys.alice))
    assert "x-frame-options" not in response.headers and "content-security-policy" not in response.headers


def test_secrets_are_never_cached(client: TestClient, app: Batchyard, keys: Keys) -> None:
    created = client.post("/api/v1/keys", json={"name": "ci"}, headers=bearer(keys.alice))
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    signed_in = client.post("/api/v1/session", json={"api_key": keys.alice})
    assert signed_in.headers["cache-control"] == "no-store"
    assert client.get("/api/v1/session").headers["cache-control"] == "no-store"
    refused = client.post("/api/v1/session", json={"api_key": "by_wrong"})
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert client.delete("/api/v1/session").headers["cache-control"] == "no-store"
    token = AuthService(app.store).create_login_token()
    link = client.get(f"/login?token={token}", follow_redirects=False)
    assert link.status_code == 303 and link.headers["cache-control"] == "no-store"
    assert client.get("/login?token=spent").headers["cache-control"] == "no-store"
    assert link.headers["referrer-policy"] == "no-referrer"


def _workers(client: TestClient, key: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/workers", headers=bearer(key))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_only_admins_see_where_workers_run(client: TestClient, app: Batchyard, keys: Keys) -> None:
    app.store.workers.register_worker("box-7.internal-4242-abc123", "box-7.internal", 4242, ["echo"], 8)
    admin_view = _workers(client, keys.root)
    assert [(w["id"], w["host"], w["pid"]) for w in admin_view] == [
        ("box-7.internal-4242-abc123", "box-7.internal", 4242)
    ]
    for key in (keys.alice, keys.vera):
        member_view = _workers(client, key)
        assert len(member_view) == 1
        worker = member_view[0]
        assert worker["host"] is None and worker["pid"] is None
        assert "box-7" not in worker["id"] and "4242" not in worker["id"]
        assert worker["handlers"] == ["echo"] and worker["concurrency"] == 8
    schema = client.get("/openapi.json").json()["components"]["schemas"]["WorkerOut"]["properties"]
    assert "admin" in schema["host"]["description"].lower() and "admin" in schema["pid"]["description"].lower()


def test_a_database_outage_does_not_tell_callers_where_the_database_is(
    client: TestClient, app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise StoreUnavailable('database unavailable: connection to server at "10.1.2.3", port 5432 failed')

    monkeypatch.setattr(app.store.db, "ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and "10.1.2.3" not in response.text and "5432" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/jobs", {"handler": "echo", "items": [1], "tag": "typo"}),
        ("POST", "/api/v1/jobs/bulk", {"action": "cancel", "ids": ["job_x"], "force": True}),
        ("POST", "/api/v1/keys", {"role": "viewer", "expires": 3}),
        ("POST", "/api/v1/session", {"api_key": "by_x", "remember": True}),
        ("POST", "/api/v1/jobs/JOB/pause", {"reason": "r", "hard": True}),
        ("POST", "/api/v1/jobs/JOB/cancel", {"why": "r"}),
    ],
)
def test_unknown_body_fields_are_refused(
    client: TestClient, app: Batchyard, keys: Keys, method: str, path: str, body: dict[str, Any]
) -> None:
    job = app.submit("echo", [1], owner="alice")
    response = client.request(method, path.replace("JOB", job.id), json=body, headers=bearer(keys.alice))
    assert response.status_code == 422, response.text
    extra = (set(body) - {"handler", "items", "action", "ids", "role", "api_key", "reason"}).pop()
    assert response.json()["error"]["param"] == extra
    assert app.store.jobs.get_job(job.id).status == "queued"


def test_request_bodies_are_documented_as_closed(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("JobCreate", "BulkRequest", "KeyCreate", "LoginRequest", "Reason"):
        assert schemas[name].get("additionalProperties") is False, name
