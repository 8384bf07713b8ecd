"""The authorization matrix, over every route the app has (so a new route cannot slip through):

- no key: 401 on every /api/ and /v1/ (OpenAI-compatible) route;
- a second member: 404 on every route with another owner's id, exactly like a missing id;
- a viewer of the owner: 403 on every write, reads allowed.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from batchyard import Batchyard, ItemContext
from batchyard.api import create_app
from batchyard.errors import ItemError
from batchyard.services.auth import AuthService, Principal, Role

from .conftest import Keys, bearer

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NO_OWNER_CHECK = {"/api/v1/session"}  # signing in: keys and tokens are checked, not owners


def _ids(client: TestClient, app: Batchyard, keys: Keys) -> dict[str, str]:
    def with_artifact(item: dict[str, int], ctx: ItemContext) -> dict[str, int]:
        if item["n"] == 2:  # one failure: an error group for the error-group routes
            raise ItemError(f"item {item['n']} refused", retryable=False, code="refused")
        ctx.save_artifact("out.txt", "hello")
        return item

    app.registry.register("with_artifact", with_artifact)
    job = app.service.submit("with_artifact", [{"custom_id": "k1", "n": 1}, {"custom_id": "k2", "n": 2}], owner="alice")
    app.job(job.id).wait(timeout=30)
    groups, _ = app.error_groups.page(job.id)
    assert len(groups) == 1
    upload = client.post(
        "/api/v1/files",
        files={"file": ("in.jsonl", b'{"n": 1}\n')},
        data={"purpose": "batch"},
        headers=bearer(keys.alice),
    )
    assert upload.status_code == 201, upload.text
    _, key_record = AuthService(app.store).create_key("alice", Role.MEMBER, "matrix")
    batch = app.openai_batches.create(
        Principal("alice", Role.MEMBER),
        input_file_id=upload.json()["id"],
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    webhook, _ = app.webhooks.create(Principal("alice", Role.MEMBER), url="https://hooks.example.com/matrix")
    return {
        "webhook_id": webhook.id,
        "delivery_id": "1",
        "job_id": job.id,
        "key": "k1",
        "file_id": upload.json()["id"],
        "key_id": key_record.id,
        "batch_id": batch.id,
        "signature": groups[0].record.signature,
        "owner": "alice",
    }


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every documented /api/ and /v1/ operation (the OpenAPI description is generated from the routes themselves)."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, operations in sorted(paths.items())
        if path.startswith(("/api/", "/v1/"))
        for method in sorted(operations)
    ]


def test_every_api_route_needs_a_key(client: TestClient, app: Batchyard, keys: Keys) -> None:
    ids = _ids(client, app, keys)
    checked = 0
    for method, path in _routes(client):
        if path in NO_OWNER_CHECK:
            continue
        response = client.request(method, path.format(**ids), json={})
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        expected = "invalid_api_key" if path.startswith("/v1/") else "unauthenticated"
        assert response.json()["error"]["code"] == expected
        checked += 1
    assert checked >= 34


def test_another_owner_gets_404_and_a_viewer_403_on_writes(client: TestClient, app: Batchyard, keys: Keys) -> None:
    ids = _ids(client, app, keys)
    with_ids = [(m, p) for m, p in _routes(client) if "{" in p]
    assert len(with_ids) >= 20
    for method, path in with_ids:
        url = path.format(**ids)
        bob = client.request(method, url, json={}, headers=bearer(keys.bob))
        assert bob.status_code == 404, (method, path, bob.status_code, bob.text)
        assert bob.json()["error"]["code"] == "not_found"
        if method in WRITE_METHODS:
            vera = client.request(method, url, json={}, headers=bearer(keys.vera))
            assert vera.status_code == 403, (method, path, vera.status_code, vera.text)
        else:
            vera = client.get(url, headers=bearer(keys.vera))
            assert vera.status_code < 400 or vera.status_code == 409, (method, path, vera.status_code, vera.text)
    # the admin sees it all
    assert client.get(f"/api/v1/jobs/{ids['job_id']}", headers=bearer(keys.root)).status_code == 200
    assert client.get(f"/api/v1/files/{ids['file_id']}", headers=bearer(keys.root)).status_code == 200


def test_metrics_are_for_admins_unless_public(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """``/metrics`` covers every owner's queue: no key 401, members and viewers 403, an admin key reads it."""
    assert client.get("/metrics").status_code == 401
    for key in (keys.alice, keys.vera):
        refused = client.get("/metrics", headers=bearer(key))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    admin = client.get("/metrics", headers=bearer(keys.root))
    assert admin.status_code == 200
    assert "batchyard_queue_depth" in admin.text

    public = Batchyard(app.settings.model_copy(update={"metrics_public": True}), demo_handlers=True)
    try:
        with TestClient(create_app(batchyard=public)) as open_client:
            assert open_client.get("/metrics").status_code == 200
            assert open_client.get("/metrics", headers=bearer(keys.alice)).status_code == 200
    finally:
        public.close()
