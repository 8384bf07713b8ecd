"""Bulk actions over HTTP (SQLite and PostgreSQL): by ids or by the job list's filter; the dry run's count is
exactly what the real run then moves; per-job outcomes; the per-call bound; viewers and other owners refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard

from ..integration.helpers import running_worker, wait_finished
from .conftest import Keys, bearer

LATER = 3600.0


def _jobs(app: Batchyard) -> dict[str, list[str]]:
    """alice: 4 queued (2 tagged march), 2 paused, 2 completed with failures, 1 completed clean; bob: 2 queued."""
    made: dict[str, list[str]] = {"queued": [], "march": [], "paused": [], "failed_items": [], "clean": [], "bob": []}
    for i in range(4):
        job = app.submit("echo", [1], owner="alice", scheduled_at=time.time() + LATER, tags=["march"] if i < 2 else [])
        made["queued"].append(job.id)
        if i < 2:
            made["march"].append(job.id)
    for _ in range(2):
        job = app.submit("echo", [1], owner="alice", scheduled_at=time.time() + LATER)
        app.service.pause(job.id)
        made["paused"].append(job.id)
    items = [{"failure_rate": 1.0, "permanent": True}, {"failure_rate": 0.0}]
    with running_worker(app):
        for _ in range(2):
            job_id = app.submit("flaky", items, owner="alice").id
            wait_finished(app, job_id)
            made["failed_items"].append(job_id)
        job_id = app.submit("echo", [1, 2], owner="alice").id
        wait_finished(app, job_id)
        made["clean"].append(job_id)
    for _ in range(2):
        made["bob"].append(app.submit("echo", [1], owner="bob", scheduled_at=time.time() + LATER).id)
    return made


def _bulk(client: TestClient, key: str, **body: Any) -> Any:
    response = client.post("/api/v1/jobs/bulk", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("action", "filter_", "expected"),
    [
        ("cancel", {"status": ["active"]}, ["queued", "paused"]),
        ("pause", {"status": ["active"], "tag": "march"}, ["march"]),
        ("resume", {}, ["paused"]),
        ("retry", {"status": ["finished"]}, ["failed_items"]),
        ("delete", {"status": ["completed"]}, ["failed_items", "clean"]),
    ],
)
def test_the_dry_run_counts_exactly_what_the_real_run_moves(
    client: TestClient, app: Batchyard, keys: Keys, action: str, filter_: dict[str, Any], expected: list[str]
) -> None:
    made = _jobs(app)
    want = {job_id for group in expected for job_id in made[group]}
    dry = _bulk(client, keys.alice, action=action, filter=filter_, dry_run=True)
    assert (dry["dry_run"], dry["affected"], dry["results"]) == (True, len(want), [])
    assert dry["matched"] >= dry["affected"]
    real = _bulk(client, keys.alice, action=action, filter=filter_)
    assert real["affected"] == dry["affected"] == len(want)
    assert {r["id"] for r in real["results"]} == want
    assert all(r["outcome"] == "done" and r["ok"] for r in real["results"]), real["results"]
    assert real["remaining"] == 0
    again = _bulk(client, keys.alice, action=action, filter=filter_, dry_run=True)
    assert again["affected"] == 0  # moved jobs no longer qualify for the same move
    for job_id in made["bob"]:  # never another owner's
        assert app.service.get(job_id).job.status == "queued"


def test_by_ids_each_job_has_its_outcome(client: TestClient, app: Batchyard, keys: Keys) -> None:
    made = _jobs(app)
    ids = [made["queued"][0], made["clean"][0], made["bob"][0], "job_missing", made["queued"][0]]
    dry = _bulk(client, keys.alice, action="cancel", ids=ids, dry_run=True)
    assert (dry["matched"], dry["affected"]) == (2, 1)  # bob's and the missing one are not counted
    real = _bulk(client, keys.alice, action="cancel", ids=ids)
    outcomes = [(r["id"], r["outcome"]) for r in real["results"]]
    assert outcomes == [
        (made["queued"][0], "done"),
        (made["clean"][0], "skipped"),
        (made["bob"][0], "not_found"),  # another owner's job reads as missing
        ("job_missing", "not_found"),
    ]
    skipped = real["results"][1]
    assert skipped["status"] == "completed" and skipped["error"]["code"] == "illegal_transition"
    assert real["results"][0]["status"] in ("cancelled", "cancelling") and real["affected"] == 1
    admin = _bulk(client, keys.root, action="cancel", ids=[made["bob"][0]])
    assert admin["results"][0]["outcome"] == "done"


def test_a_real_run_is_bounded_and_says_what_is_left(
    client: TestClient, app: Batchyard, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchyard.services import bulk

    made = _jobs(app)
    monkeypatch.setattr(bulk, "MAX_BULK_JOBS", 3)
    first = _bulk(client, keys.alice, action="cancel", filter={"status": ["queued"]})
    assert (first["affected"], first["remaining"]) == (3, 1)
    assert [r["id"] for r in first["results"]] == made["queued"][::-1][:3]  # newest first
    second = _bulk(client, keys.alice, action="cancel", filter={"status": ["queued"]})
    assert (second["affected"], second["remaining"]) == (1, 0)
    refused = client.post(
        "/api/v1/jobs/bulk", json={"action": "cancel", "ids": ["a", "b", "c", "d"]}, headers=bearer(keys.alice)
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "ids"


def test_refusals(client: TestClient, app: Batchyard, keys: Keys) -> None:
    made = _jobs(app)

    def post(key: str, **body: Any) -> Any:
        return client.post("/api/v1/jobs/bulk", json=body, headers=bearer(key))

    assert post(keys.vera, action="cancel", filter={}, dry_run=True).status_code == 403  # viewer
    assert post(keys.vera, action="cancel", ids=made["queued"]).status_code == 403
    other = post(keys.alice, action="cancel", filter={"owner": "bob"}, dry_run=True)
    assert other.status_code == 403 and other.json()["error"]["param"] == "owner"
    assert post(keys.alice, action="cancel").status_code == 400  # neither ids nor filter
    assert post(keys.alice, action="cancel", ids=made["queued"], filter={}).status_code == 400  # both
    assert post(keys.alice, action="explode", filter={}).status_code == 422
    assert post(keys.alice, action="cancel", filter={"status": ["nope"]}).status_code == 422
    assert post(keys.alice, action="cancel", filter={"stauts": ["queued"]}).status_code == 422  # typo: not ignored
    assert post(keys.alice, action="cancel", ids=[]).status_code == 422
    admin = post(keys.root, action="cancel", filter={"owner": "bob"}, dry_run=True).json()
    assert (admin["matched"], admin["affected"]) == (2, 2)
