"""GET /api/v1/stats/history on SQLite and PostgreSQL: finished jobs per bucket from their counters, the job
list's filters, owner scope, and clear 4xx for ranges that cannot be shown."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from batchyard import Batchyard

from ..integration.helpers import running_worker, wait_finished
from .conftest import Keys, bearer


def _history(client: TestClient, key: str, **params: Any) -> Any:
    response = client.get("/api/v1/stats/history", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_history_sums_finished_jobs(client: TestClient, app: Batchyard, keys: Keys) -> None:
    start = time.time() - 1
    with running_worker(app):
        ok = app.submit("echo", [{"n": i} for i in range(4)], owner="alice", description="ok").id
        mixed = app.submit("flaky", [{"failure_rate": 1.0, "permanent": True}, {"failure_rate": 0.0}], owner="alice").id
        bobs = app.submit("echo", [{"n": 1}], owner="bob").id
        for job_id in (ok, mixed, bobs):
            wait_finished(app, job_id)
    waiting = app.submit("echo", [1], owner="alice", scheduled_at=time.time() + 3600).id
    app.service.cancel(waiting)  # cancelled before starting: finished, no duration
    until = time.time() + 1

    mine = _history(client, keys.alice, since=start, until=until, bucket="hour")
    assert (mine["bucket"], mine["owner"]) == ("hour", "alice")
    totals = mine["totals"]
    assert totals["jobs"] == {"total": 3, "completed": 2, "failed": 0, "cancelled": 1, "expired": 0}
    assert (totals["items_succeeded"], totals["items_failed"]) == (5, 1)
    assert totals["success_rate"] == 5 / 6
    assert (
        totals["avg_duration_seconds"] is not None and totals["p95_duration_seconds"] >= totals["p50_duration_seconds"]
    )
    assert sum(b["jobs"]["total"] for b in mine["buckets"]) == 3
    assert all(b["end"] - b["start"] == 3600 for b in mine["buckets"])
    recent = mine["recent"]
    assert [j["id"] for j in recent] == [waiting, *[j["id"] for j in recent[1:]]]  # latest first
    assert {j["id"] for j in recent} == {ok, mixed, waiting}
    by_id = {j["id"]: j for j in recent}
    assert by_id[ok]["items_per_second"] > 0 and by_id[ok]["duration_seconds"] >= 0
    assert by_id[waiting]["duration_seconds"] is None

    # the job list's filters
    assert _history(client, keys.alice, since=start, until=until, handler="flaky")["totals"]["jobs"]["total"] == 1
    assert _history(client, keys.alice, since=start, until=until, q="ok")["totals"]["jobs"]["total"] == 1
    assert _history(client, keys.alice, since=start, until=until, status="cancelled")["totals"]["jobs"]["total"] == 1
    assert _history(client, keys.alice, since=start, until=until, status="active")["totals"]["jobs"]["total"] == 0
    # scope: an admin sees all, or one owner; others their own, and 403 for another owner
    assert _history(client, keys.root, since=start, until=until)["totals"]["jobs"]["total"] == 4
    assert _history(client, keys.root, since=start, until=until, owner="bob")["totals"]["jobs"]["total"] == 1
    assert _history(client, keys.vera, since=start, until=until)["totals"] == totals
    refused = client.get("/api/v1/stats/history", params={"owner": "bob"}, headers=bearer(keys.alice))
    assert refused.status_code == 403
    # defaults: the last 7 days, by day
    default = _history(client, keys.alice)
    assert default["bucket"] == "day" and default["totals"]["jobs"]["total"] == 3
    assert len(default["buckets"]) in (7, 8)
    assert _history(client, keys.alice, since=start, until=until, recent=0)["recent"] == []


def test_bad_ranges_are_clear_4xx(client: TestClient, keys: Keys) -> None:
    def status(**params: Any) -> int:
        return client.get("/api/v1/stats/history", params=params, headers=bearer(keys.alice)).status_code

    now = time.time()
    assert status(since=now, until=now - 10) == 400
    assert status(since=now - 2000 * 3600, until=now, bucket="hour") == 400  # over 1,000 buckets
    assert status(since=now - 2000 * 3600, until=now, bucket="day") == 200
    assert status(bucket="week") == 422
    assert status(recent=201) == 422
    assert status(since=-1) == 422
    assert client.get("/api/v1/stats/history").status_code == 401
