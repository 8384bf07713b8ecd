"""Jobs over HTTP: create, idempotency, wait, list with filters and cursors, moves, bulk, timeline."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
from fastapi.testclient import TestClient

from batchyard import Batchyard

from ..integration.helpers import running_worker, wait_finished
from ..waits import wait_until
from .conftest import Keys, bearer


def _create(client: TestClient, key: str, **body: Any) -> httpx2.Response:
    body.setdefault("handler", "echo")
    body.setdefault("items", [{"n": i} for i in range(3)])
    return client.post("/api/v1/jobs", json=body, headers=bearer(key))


def test_create_get_and_run_to_completion(client: TestClient, app: Batchyard, keys: Keys) -> None:
    response = _create(
        client, keys.alice, description="first", tags=["a", "b"], project="p1", params={"x": 1}, max_attempts=2
    )
    assert response.status_code == 201
    job = response.json()
    assert (job["status"], job["owner"], job["counts"]["total"], job["counts"]["queued"]) == ("queued", "alice", 3, 3)
    assert (job["project"], job["tags"], job["settings"]["max_attempts"]) == ("p1", ["a", "b"], 2)
    with running_worker(app):
        wait_finished(app, job["id"])
    done = client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(keys.alice)).json()
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 3 and done["percent"] == 100
    assert done["result_files"]["results.jsonl"]["rows"] == 3
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=bearer(keys.alice)).json()["data"]
    assert [e["type"] for e in events] == ["created", "started", "finalizing", "completed"]


def test_wait_returns_the_finished_job(client: TestClient, app: Batchyard, keys: Keys) -> None:
    with running_worker(app):
        response = client.post(
            "/api/v1/jobs?wait=20", json={"handler": "echo", "items": [1, 2, 3]}, headers=bearer(keys.alice)
        )
    assert response.status_code == 201
    assert response.json()["status"] == "completed"


def test_bad_items_are_422_with_line_numbers_and_create_nothing(client: TestClient, keys: Keys) -> None:
    response = _create(client, keys.alice, items=[{"custom_id": "a"}, {"custom_id": "a"}, {"custom_id": []}])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["total"] == 2
    assert [(p["line"], p["code"]) for p in error["problems"]] == [(2, "duplicate_key"), (3, "invalid_key")]
    assert client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"] == []


def test_client_mistakes_are_4xx(client: TestClient, keys: Keys) -> None:
    assert _create(client, keys.alice, handler="nope").status_code == 400
    assert _create(client, keys.alice, items=None).status_code == 400  # neither items nor a file
    assert _create(client, keys.alice, priority=10**6).status_code == 422
    assert (
        client.post(
            "/api/v1/jobs", content=b"{not json", headers={**bearer(keys.alice), "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert client.get("/api/v1/jobs?limit=0", headers=bearer(keys.alice)).status_code == 422
    assert client.get("/api/v1/jobs?cursor=%%%", headers=bearer(keys.alice)).status_code == 400


def test_idempotency_key(client: TestClient, keys: Keys) -> None:
    headers = {**bearer(keys.alice), "Idempotency-Key": "order-42"}
    body = {"handler": "echo", "items": [{"n": 1}], "description": "once"}
    first = client.post("/api/v1/jobs", json=body, headers=headers)
    again = client.post("/api/v1/jobs", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    different = client.post("/api/v1/jobs", json={**body, "description": "twice"}, headers=headers)
    assert different.status_code == 422
    assert different.json()["error"]["code"] == "idempotency_key_reused"
    # keys are per owner: bob's same key makes his own job
    bob = client.post("/api/v1/jobs", json=body, headers={**bearer(keys.bob), "Idempotency-Key": "order-42"})
    assert bob.status_code == 201 and bob.json()["id"] != first.json()["id"]
    assert len(client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"]) == 1


def test_list_filters_sorting_and_cursor(client: TestClient, keys: Keys) -> None:
    ids = []
    for i in range(7):
        job = _create(
            client,
            keys.alice,
            project="p1" if i % 2 else "p2",
            tags=[f"t{i % 3}"],
            priority=i,
            description=f"batch number {i}",
        ).json()
        ids.append(job["id"])
        time.sleep(0.002)  # ids sort by creation time in milliseconds: the clock must move between jobs
    _create(client, keys.bob)
    h = bearer(keys.alice)
    page = client.get("/api/v1/jobs?limit=3", headers=h).json()
    assert [j["id"] for j in page["data"]] == ids[::-1][:3] and page["has_more"]
    seen = [j["id"] for j in page["data"]]
    while page["has_more"]:
        page = client.get(f"/api/v1/jobs?limit=3&cursor={page['next_cursor']}", headers=h).json()
        seen += [j["id"] for j in page["data"]]
    assert seen == ids[::-1]  # every job once, newest first, none of bob's
    assert {j["project"] for j in client.get("/api/v1/jobs?project=p1", headers=h).json()["data"]} == {"p1"}
    assert len(client.get("/api/v1/jobs?tag=t0", headers=h).json()["data"]) == 3
    assert [j["priority"] for j in client.get("/api/v1/jobs?sort=-priority&limit=2", headers=h).json()["data"]] == [
        6,
        5,
    ]
    assert [j["id"] for j in client.get("/api/v1/jobs?q=number 4", headers=h).json()["data"]] == [ids[4]]
    assert [j["id"] for j in client.get(f"/api/v1/jobs?q={ids[2][:22]}", headers=h).json()["data"]] == [ids[2]]
    assert client.get("/api/v1/jobs?status=queued&status=running", headers=h).json()["data"][0]["status"] == "queued"
    assert client.get("/api/v1/jobs?status=completed", headers=h).json()["data"] == []
    assert len(client.get("/api/v1/jobs", headers=bearer(keys.root)).json()["data"]) == 8
    assert len(client.get("/api/v1/jobs?owner=bob", headers=bearer(keys.root)).json()["data"]) == 1
    refused = client.get("/api/v1/jobs?owner=bob", headers=h)  # owner is admin-only: never silently ignored
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "owner"
    assert len(client.get("/api/v1/jobs?owner=alice", headers=h).json()["data"]) == 7  # naming oneself is fine


def test_moves_and_illegal_ones(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.alice)
    job = _create(client, keys.alice, scheduled_at=time.time() + 3600).json()
    url = f"/api/v1/jobs/{job['id']}"
    assert client.post(f"{url}/pause", json={"reason": "top-up needed"}, headers=h).json()["status"] == "paused"
    again = client.post(f"{url}/pause", headers=h)
    assert again.status_code == 409
    assert again.json()["error"]["current_status"] == "paused"
    assert client.post(f"{url}/resume", headers=h).json()["status"] == "queued"
    assert client.delete(url, headers=h).status_code == 409  # not finished
    assert client.post(f"{url}/cancel", headers=h).json()["status"] == "cancelled"
    retry = client.post(f"{url}/retry", json={"include": ["failed"]}, headers=h)
    assert retry.status_code == 409  # nothing failed
    assert retry.json()["error"]["message"].endswith("has no failed items to retry")
    rerun = client.post(f"{url}/retry", headers=h)  # a cancelled job runs again: its cancelled items too
    assert rerun.status_code == 200
    assert (rerun.json()["status"], rerun.json()["retried"]) == ("queued", 3)  # it had never started
    assert client.post(f"{url}/cancel", headers=h).json()["status"] == "cancelled"
    events = client.get(f"{url}/events", headers=h).json()["data"]
    assert [(e["type"], e["actor"]) for e in events][1:] == [
        ("paused", "alice"),
        ("resumed", "alice"),
        ("cancelled", "alice"),
        ("rerun", "alice"),
        ("cancelled", "alice"),
    ]
    assert events[1]["message"] == "top-up needed"
    assert events[1]["data"] == {"reason": "paused_by_user", "message": "top-up needed"}
    assert client.delete(url, headers=h).status_code == 204
    assert client.get(url, headers=h).status_code == 404


def test_retry_returns_how_many(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = _create(
        client,
        keys.alice,
        handler="flaky",
        params={"failure_rate": 1.0, "permanent": True},
        items=[{"n": i} for i in range(4)],
    ).json()
    with running_worker(app):
        wait_finished(app, job["id"])
        retried = client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(keys.alice)).json()
        assert retried["retried"] == 4 and retried["counts"]["queued"] == 4
        wait_finished(app, job["id"])


def test_retry_include_chooses_the_items_and_rejects_unknown_values(
    client: TestClient, app: Batchyard, keys: Keys
) -> None:
    h = bearer(keys.alice)
    job = _create(client, keys.alice, scheduled_at=time.time() + 3600, items=[{"n": i} for i in range(3)]).json()
    url = f"/api/v1/jobs/{job['id']}"
    assert client.post(f"{url}/cancel", headers=h).json()["status"] == "cancelled"
    for body, param_message in [
        ({"include": ["succeeded"]}, "unknown item status 'succeeded'"),
        ({"include": ["failed", "bogus"]}, "unknown item status 'bogus'"),
        ({"include": []}, "an empty list"),
    ]:
        bad = client.post(f"{url}/retry", json=body, headers=h)
        assert bad.status_code == 400, bad.text
        error = bad.json()["error"]
        assert error["param"] == "include" and error["code"] == "invalid_request"
        assert param_message in error["message"] and "failed, cancelled" in error["message"]
    assert client.post(f"{url}/retry", json={"include": "failed"}, headers=h).status_code == 422  # not a list
    assert client.post(f"{url}/retry", json={"include": ["cancelled"]}, headers=bearer(keys.vera)).status_code == 403
    assert client.post(f"{url}/retry", json={"include": ["cancelled"]}, headers=bearer(keys.bob)).status_code == 404
    assert client.get(url, headers=h).json()["status"] == "cancelled"  # nothing changed so far
    ok = client.post(f"{url}/retry", json={"include": ["cancelled"]}, headers=h)
    assert ok.status_code == 200 and ok.json()["retried"] == 3 and ok.json()["counts"]["queued"] == 3
    events = client.get(f"{url}/events", headers=h).json()["data"]
    assert events[-1]["type"] == "rerun" and events[-1]["data"]["cancelled"] == 3


def test_a_handlers_pause_shows_in_the_job_json(client: TestClient, app: Batchyard, keys: Keys) -> None:
    from batchyard import ItemContext, PauseJob

    def admit(item: Any, ctx: ItemContext) -> None:
        raise PauseJob("Token balance exhausted: 0 of 1,200 left")

    app.handler("gated_by_balance", admit=admit)(lambda item, ctx: item)
    h = bearer(keys.alice)
    job = _create(client, keys.alice, handler="gated_by_balance", items=[{"n": 1}, {"n": 2}]).json()
    url = f"/api/v1/jobs/{job['id']}"
    with running_worker(app):
        wait_until(lambda: client.get(url, headers=h).json()["status"] == "paused", what="the pause")
    paused = client.get(url, headers=h).json()
    assert paused["status_reason"] == "paused_by_handler"
    assert paused["status_message"] == "Token balance exhausted: 0 of 1,200 left"
    assert paused["counts"]["queued"] == 2 and paused["counts"]["done"] == 0
    listed = client.get("/api/v1/jobs", headers=h).json()["data"][0]
    assert (listed["id"], listed["status_reason"]) == (job["id"], "paused_by_handler")
    events = client.get(f"{url}/events", headers=h).json()["data"]
    assert events[-1]["type"] == "paused" and events[-1]["data"]["reason"] == "paused_by_handler"
    assert events[-1]["message"] == "Token balance exhausted: 0 of 1,200 left"
    resumed = client.post(f"{url}/resume", headers=h).json()
    assert (resumed["status"], resumed["status_reason"], resumed["status_message"]) == ("running", None, None)


def test_bulk_actions_report_each_id(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.alice)
    a = _create(client, keys.alice, scheduled_at=time.time() + 3600).json()["id"]
    b = _create(client, keys.alice, scheduled_at=time.time() + 3600).json()["id"]
    bobs = _create(client, keys.bob).json()["id"]
    out = client.post(
        "/api/v1/jobs/bulk", json={"action": "pause", "ids": [a, b, bobs, "job_missing"]}, headers=h
    ).json()["results"]
    assert [(r["id"], r["ok"]) for r in out] == [(a, True), (b, True), (bobs, False), ("job_missing", False)]
    assert out[2]["error"]["code"] == out[3]["error"]["code"] == "not_found"
    assert client.post("/api/v1/jobs/bulk", json={"action": "explode", "ids": [a]}, headers=h).status_code == 422
    assert (
        client.post("/api/v1/jobs/bulk", json={"action": "cancel", "ids": [a]}, headers=bearer(keys.vera)).status_code
        == 403
    )


def test_owner_isolation_and_roles(client: TestClient, keys: Keys) -> None:
    job = _create(client, keys.alice, scheduled_at=time.time() + 3600).json()
    url = f"/api/v1/jobs/{job['id']}"
    missing = client.get("/api/v1/jobs/job_000000000000deadbeef", headers=bearer(keys.bob))
    others = client.get(url, headers=bearer(keys.bob))
    assert others.status_code == missing.status_code == 404
    # the whole error is the same (message, type, param, code): nothing tells "someone else's" from "missing"
    assert json.dumps(others.json()).replace(job["id"], "X") == json.dumps(missing.json()).replace(
        "job_000000000000deadbeef", "X"
    )
    for path in ("", "/events", "/progress"):
        assert client.get(url + path, headers=bearer(keys.bob)).status_code == 404
        assert client.get(url + path, headers=bearer(keys.vera)).status_code == 200
        assert client.get(url + path).status_code == 401
    for action in ("pause", "cancel", "retry"):
        assert client.post(f"{url}/{action}", headers=bearer(keys.bob)).status_code == 404
        assert client.post(f"{url}/{action}", headers=bearer(keys.vera)).status_code == 403
    assert _create(client, keys.vera).status_code == 403
    assert client.get(url, headers=bearer(keys.root)).status_code == 200
    assert client.post(f"{url}/pause", headers=bearer(keys.root)).json()["status"] == "paused"


def test_job_json_says_how_many_live_workers_take_it(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = _create(client, keys.alice).json()
    assert job["workers_alive"] == 0
    other = _create(client, keys.alice, handler="sleep").json()
    app.store.workers.register_worker("w-echo", "host", 1, ["echo"], 4)
    app.store.workers.register_worker("w-wait", "host", 2, ["echo"], 4, jobs=[job["id"]])
    app.store.workers.register_worker("w-elsewhere", "host", 3, ["echo"], 4, jobs=["job_other"])
    app.store.workers.register_worker("w-gone", "host", 4, ["echo"], 4)
    app.store.workers.set_worker_status("w-gone", "stopped")

    got = client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(keys.alice)).json()
    listed = client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"]

    assert got["workers_alive"] == 2  # the unlimited one and the one limited to this job
    assert {j["id"]: j["workers_alive"] for j in listed} == {job["id"]: 2, other["id"]: 0}
