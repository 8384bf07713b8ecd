"""Quotas over HTTP: who may read and set them, what a change means, and a job paused by a spent budget."""

from __future__ import annotations

from fastapi.testclient import TestClient

from batchyard import Batchyard

from .conftest import Keys, bearer


def test_admin_sets_and_the_owner_reads_its_quota(client: TestClient, app: Batchyard, keys: Keys) -> None:
    none = client.get("/api/v1/quotas/alice", headers=bearer(keys.alice))
    assert none.status_code == 200, none.text
    assert none.json()["limited"] is False and none.json()["items"] is None and none.json()["usage"] is None

    put = client.put(
        "/api/v1/quotas/alice",
        json={"items": 5, "period": "month", "max_running": 2},
        headers=bearer(keys.root),
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert (body["limited"], body["items"], body["period"], body["max_running"]) == (True, 5, "month", 2)
    assert body["usage"] == {"items": 0, "tokens": 0, "cost": 0.0}
    assert body["remaining"] == {"items": 5, "tokens": None, "cost": None}
    assert body["resets_at"] > body["period_start"] and body["exhausted"] is None

    # Only what is given changes; null clears a limit.
    put = client.put("/api/v1/quotas/alice", json={"tokens": 1000}, headers=bearer(keys.root))
    assert (put.json()["items"], put.json()["tokens"], put.json()["period"]) == (5, 1000, "month")
    put = client.put("/api/v1/quotas/alice", json={"max_running": None}, headers=bearer(keys.root))
    assert put.json()["max_running"] is None and put.json()["items"] == 5

    for key in (keys.alice, keys.vera):  # the owner and its viewer read it
        seen = client.get("/api/v1/quotas/alice", headers=bearer(key))
        assert seen.status_code == 200 and seen.json()["items"] == 5
    listed = client.get("/api/v1/quotas", headers=bearer(keys.alice)).json()["data"]
    assert [q["owner"] for q in listed] == ["alice"]


def test_who_may_not(client: TestClient, keys: Keys) -> None:
    client.put("/api/v1/quotas/alice", json={"items": 5}, headers=bearer(keys.root))
    other = client.get("/api/v1/quotas/alice", headers=bearer(keys.bob))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/quotas", headers=bearer(keys.bob)).json()["data"] == []
    listing = client.get("/api/v1/quotas?owner=alice", headers=bearer(keys.bob))
    assert listing.status_code == 403
    own = client.put("/api/v1/quotas/alice", json={"items": 10**6}, headers=bearer(keys.alice))
    assert own.status_code == 403 and "admin" in own.json()["error"]["message"]
    assert client.delete("/api/v1/quotas/alice", headers=bearer(keys.vera)).status_code == 403
    assert client.get("/api/v1/quotas/alice").status_code == 401


def test_bad_values_are_client_errors(client: TestClient, keys: Keys) -> None:
    bad = ({"items": -1}, {"period": "week"}, {"cost": "lots"}, {"items": 1.5}, {"budget": 3}, {"max_running": False})
    for body in (*bad, {"items": "5"}, {"cost": True}):
        refused = client.put("/api/v1/quotas/alice", json=body, headers=bearer(keys.root))
        assert refused.status_code == 422, (body, refused.text)
    long = client.put("/api/v1/quotas/" + "x" * 300, json={"items": 1}, headers=bearer(keys.root))
    assert long.status_code in (400, 422)
    spaced = client.put("/api/v1/quotas/a%20b", json={"items": 1}, headers=bearer(keys.root))
    assert spaced.status_code == 400 and spaced.json()["error"]["param"] == "owner"
    missing = client.delete("/api/v1/quotas/nobody", headers=bearer(keys.root))
    assert missing.status_code == 404


def test_a_spent_budget_pauses_the_job_and_a_top_up_resumes_it(client: TestClient, app: Batchyard, keys: Keys) -> None:
    client.put("/api/v1/quotas/alice", json={"items": 3}, headers=bearer(keys.root))
    created = client.post(
        "/api/v1/jobs",
        json={"handler": "echo", "items": [{"n": i} for i in range(8)]},
        headers=bearer(keys.alice),
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    claimed = 0  # a worker that claims and has not finished yet: its items stay running
    while (batch := app.store.claims.claim_items("w", {"echo": 2}, 30)) is not None and batch.items:
        claimed += len(batch.items)
    assert claimed == 3
    job = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(keys.alice)).json()
    assert job["status"] == "paused" and job["status_reason"] == "quota_exhausted"
    assert "3 of 3" in job["status_message"]
    assert job["counts"]["running"] == 3 and job["counts"]["queued"] == 5
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=bearer(keys.alice)).json()["data"]
    assert events[-1]["type"] == "paused" and events[-1]["actor"] == "quota"

    quota = client.get("/api/v1/quotas/alice", headers=bearer(keys.alice)).json()
    assert (quota["exhausted"], quota["paused_jobs"], quota["running"]) == ("items", 1, 3)
    assert quota["remaining"]["items"] == 0

    # Raising the budget resumes it at once, and says so.
    raised = client.put("/api/v1/quotas/alice", json={"items": 6}, headers=bearer(keys.root)).json()
    assert raised["resumed_jobs"] == [job_id]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(keys.alice)).json()
    assert job["status"] == "running" and job["status_reason"] is None
