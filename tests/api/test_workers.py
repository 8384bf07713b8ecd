"""GET /api/v1/workers for the Workers page, on SQLite and PostgreSQL: what each worker runs (its leases, owner-
scoped), its last heartbeat, whether it is alive, and stopped or lost workers on request."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from batchyard import Batchyard

from .conftest import Keys, bearer


def _workers(client: TestClient, key: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/workers", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_what_each_worker_runs_and_whether_it_is_alive(client: TestClient, app: Batchyard, keys: Keys) -> None:
    alices = app.submit("echo", [{"n": i} for i in range(5)], owner="alice").id
    bobs = app.submit("sleep", [{"ms": 1}, {"ms": 1}], owner="bob").id
    workers = app.store.workers
    workers.register_worker("box-1-100-aaa", "box-1", 100, ["echo"], 8)
    workers.register_worker("box-2-200-bbb", "box-2", 200, ["sleep"], 8)
    workers.register_worker("box-3-300-ccc", "box-3", 300, ["echo"], 8)
    assert app.store.claims.claim_items("box-1-100-aaa", {"echo": 3}, 60.0) is not None  # 3 of alice's 5
    assert app.store.claims.claim_items("box-2-200-bbb", {"sleep": 10}, 60.0) is not None  # both of bob's
    workers.set_worker_status("box-3-300-ccc", "stopped")

    admin = {w["id"]: w for w in _workers(client, keys.root)}
    assert set(admin) == {"box-1-100-aaa", "box-2-200-bbb"}  # live ones only, by default
    assert admin["box-1-100-aaa"]["running"] == [{"job_id": alices, "handler": "echo", "items": 3}]
    assert admin["box-2-200-bbb"]["running"] == [{"job_id": bobs, "handler": "sleep", "items": 2}]
    assert all(w["alive"] and w["last_seen_at"] > 0 for w in admin.values())

    alice = _workers(client, keys.alice)
    assert len(alice) == 2 and all(w["host"] is None for w in alice)
    running = sorted((r["job_id"], r["items"]) for w in alice for r in w["running"])
    assert running == [(alices, 3)]  # bob's job is not shown to alice
    assert sorted((r["job_id"]) for w in _workers(client, keys.bob) for r in w["running"]) == [bobs]

    with_recent = {w["id"]: w for w in _workers(client, keys.root, recent=3600)}
    assert set(with_recent) == {"box-1-100-aaa", "box-2-200-bbb", "box-3-300-ccc"}
    stopped = with_recent["box-3-300-ccc"]
    assert (stopped["status"], stopped["alive"], stopped["running"]) == ("stopped", False, [])
    assert client.get("/api/v1/workers", params={"recent": -1}, headers=bearer(keys.root)).status_code == 422
