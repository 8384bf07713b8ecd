"""``GET /api/v1/stats`` on a known set of jobs: exact counts, rates, usage and cost, owner scoping and filters."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.context import ItemContext
from batchyard.core.records import StatsFilter
from batchyard.errors import PermanentError
from tests.integration.helpers import running_worker, wait_finished
from tests.waits import wait_until

from .conftest import Keys, bearer

COST_PER_ITEM = 0.25
TOKENS_PER_ITEM = 10


def register_priced(app: Batchyard) -> None:
    @app.handler("priced")
    def priced(item: dict[str, Any], ctx: ItemContext) -> dict[str, bool]:
        if item.get("fail"):
            raise PermanentError("this item is meant to fail")
        ctx.add_usage(cost=COST_PER_ITEM, tokens=TOKENS_PER_ITEM)
        return {"ok": True}


@pytest.fixture
def jobs(app: Batchyard) -> dict[str, str]:
    """Alice: two projects plus one job without, two handlers, failures, a cancelled and a paused job. Bob: one."""
    register_priced(app)
    submit = app.service.submit
    ids = {
        "web_priced": submit("priced", [{"n": 1}, {"n": 2}, {"n": 3}, {"fail": True}], owner="alice", project="web").id,
        "web_echo": submit("echo", [{"n": 1}, {"n": 2}], owner="alice", project="web").id,
        "batch_priced": submit("priced", [{"fail": True}] * 3, owner="alice", project="batch").id,
        "bob_web": submit("priced", [{"n": 1}, {"n": 2}], owner="bob", project="web").id,
    }
    with running_worker(app):
        for job_id in ids.values():
            wait_finished(app, job_id)
    # created with no worker running, so none of their items ran
    ids["cancelled"] = submit("echo", [{"n": i} for i in range(5)], owner="alice").id
    app.service.cancel(ids["cancelled"])
    ids["paused"] = submit("echo", [{"n": 1}, {"n": 2}], owner="alice", project="batch").id
    app.service.pause(ids["paused"])
    return ids


def stats(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/stats", headers=bearer(key), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counts(group: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The non-zero job and item counts of a group."""
    return ({k: v for k, v in group["jobs"].items() if v}, {k: v for k, v in group["items"].items() if v})


def test_totals_for_a_member_count_only_their_own_jobs(
    app: Batchyard, client: TestClient, keys: Keys, jobs: dict[str, str]
) -> None:
    body = stats(client, keys.alice)
    assert body["scope"] == {"owner": "alice", "project": None, "handler": None, "since": None}
    totals = body["totals"]
    assert counts(totals) == (
        {"total": 5, "completed": 3, "cancelled": 1, "paused": 1},
        {"total": 16, "succeeded": 5, "failed": 4, "cancelled": 5, "queued": 2},
    )
    assert totals["success_rate"] == pytest.approx(5 / 9)
    assert totals["cost"] == pytest.approx(3 * COST_PER_ITEM)
    assert totals["usage"] == {"tokens": 3 * TOKENS_PER_ITEM}

    records = [app.store.jobs.get_job(jobs[name]) for name in ("web_priced", "web_echo", "batch_priced")]
    busy = sum(r.busy_seconds for r in records)
    assert busy > 0
    assert totals["avg_item_seconds"] == pytest.approx(busy / 9)
    assert totals["recent_avg_item_seconds"] == pytest.approx(busy / 9)  # all of them ran within the hour
    # 9 items finished within the last 5 minutes, since the first of these jobs started
    first_start = min(r.started_at for r in records if r.started_at is not None)
    span = max(body["generated_at"] - first_start, 1.0)
    assert totals["items_per_second"] == pytest.approx(9 / span, rel=1e-6)


def test_breakdown_per_project_and_per_handler(client: TestClient, keys: Keys, jobs: dict[str, str]) -> None:
    body = stats(client, keys.alice)
    by_project = {p["project"]: p for p in body["by_project"]}
    assert [p["project"] for p in body["by_project"]] == [None, "batch", "web"]
    assert counts(by_project["web"]) == ({"total": 2, "completed": 2}, {"total": 6, "succeeded": 5, "failed": 1})
    assert by_project["web"]["success_rate"] == pytest.approx(5 / 6)
    assert by_project["web"]["cost"] == pytest.approx(3 * COST_PER_ITEM)
    assert by_project["web"]["usage"] == {"tokens": 30}
    assert counts(by_project["batch"]) == (
        {"total": 2, "completed": 1, "paused": 1},
        {"total": 5, "failed": 3, "queued": 2},
    )
    assert by_project["batch"]["success_rate"] == 0.0
    assert by_project["batch"]["usage"] == {} and by_project["batch"]["cost"] == 0.0
    assert counts(by_project[None]) == ({"total": 1, "cancelled": 1}, {"total": 5, "cancelled": 5})
    assert by_project[None]["success_rate"] is None and by_project[None]["avg_item_seconds"] is None
    assert by_project[None]["items_per_second"] == 0.0

    by_handler = {h["handler"]: h for h in body["by_handler"]}
    assert [h["handler"] for h in body["by_handler"]] == ["echo", "priced"]
    assert counts(by_handler["echo"]) == (
        {"total": 3, "completed": 1, "cancelled": 1, "paused": 1},
        {"total": 9, "succeeded": 2, "cancelled": 5, "queued": 2},
    )
    assert counts(by_handler["priced"]) == ({"total": 2, "completed": 2}, {"total": 7, "succeeded": 3, "failed": 4})
    assert by_handler["priced"]["success_rate"] == pytest.approx(3 / 7)
    assert by_handler["echo"]["success_rate"] == 1.0


def test_admins_see_every_owner_or_one(client: TestClient, keys: Keys, jobs: dict[str, str]) -> None:
    everyone = stats(client, keys.root)
    assert everyone["scope"]["owner"] is None
    assert counts(everyone["totals"]) == (
        {"total": 6, "completed": 4, "cancelled": 1, "paused": 1},
        {"total": 18, "succeeded": 7, "failed": 4, "cancelled": 5, "queued": 2},
    )
    assert everyone["totals"]["cost"] == pytest.approx(5 * COST_PER_ITEM)
    assert everyone["totals"]["usage"] == {"tokens": 50}

    bob = stats(client, keys.root, owner="bob")
    assert counts(bob["totals"]) == ({"total": 1, "completed": 1}, {"total": 2, "succeeded": 2})
    assert [p["project"] for p in bob["by_project"]] == ["web"]
    assert counts(stats(client, keys.bob)["totals"]) == counts(bob["totals"])


def test_members_and_viewers_cannot_look_at_other_owners(client: TestClient, keys: Keys, jobs: dict[str, str]) -> None:
    bob = stats(client, keys.bob)
    assert counts(bob["totals"]) == ({"total": 1, "completed": 1}, {"total": 2, "succeeded": 2})
    assert bob["totals"]["usage"] == {"tokens": 20}
    # a viewer of alice's owner sees exactly alice's numbers
    assert counts(stats(client, keys.vera)["totals"]) == counts(stats(client, keys.alice)["totals"])
    assert stats(client, keys.alice, owner="alice")["scope"]["owner"] == "alice"
    response = client.get("/api/v1/stats", params={"owner": "bob"}, headers=bearer(keys.alice))
    assert response.status_code == 403
    assert response.json()["error"]["param"] == "owner"
    assert client.get("/api/v1/stats").status_code == 401


def test_filters(client: TestClient, keys: Keys, jobs: dict[str, str]) -> None:
    web = stats(client, keys.alice, project="web")
    assert counts(web["totals"]) == ({"total": 2, "completed": 2}, {"total": 6, "succeeded": 5, "failed": 1})
    assert [p["project"] for p in web["by_project"]] == ["web"]
    echo = stats(client, keys.alice, handler="echo")
    assert echo["totals"]["jobs"]["total"] == 3 and [h["handler"] for h in echo["by_handler"]] == ["echo"]
    both = stats(client, keys.alice, project="batch", handler="priced")
    assert counts(both["totals"]) == ({"total": 1, "completed": 1}, {"total": 3, "failed": 3})
    future = stats(client, keys.alice, since=time.time() + 3600)
    assert future["totals"]["jobs"]["total"] == 0 and future["by_project"] == [] and future["by_handler"] == []
    assert future["totals"]["success_rate"] is None and future["totals"]["items_per_second"] == 0.0
    assert stats(client, keys.alice, since=0)["totals"]["jobs"]["total"] == 5
    response = client.get("/api/v1/stats", params={"since": -1}, headers=bearer(keys.alice))
    assert response.status_code == 422 and response.json()["error"]["param"] == "since"


def test_throughput_counts_only_items_finished_inside_the_window(app: Batchyard) -> None:
    """A job's items before the window are its last progress sample before it; only the rest count."""
    gate = threading.Event()

    @app.handler("gated")
    def gated(item: dict[str, Any], ctx: ItemContext) -> None:
        if item.get("wait"):
            assert gate.wait(20), "the test never opened the gate"

    job = app.service.submit("gated", [{"n": 1}, {"n": 2}, {"n": 3}, {"wait": True}], owner="alice")
    try:
        with running_worker(app):
            wait_until(lambda: app.store.jobs.get_job(job.id).succeeded == 3, what="three quick items")
            app.store.upkeep.record_progress_samples(min_interval=0.0)
            sample_at = max(at for at, done, _, _ in app.store.jobs.recent_samples(job.id, 0) if done == 3)
            time.sleep(0.3)  # the clock must move past the window's start before the last item ends
            gate.set()
            wait_finished(app, job.id)
    finally:
        gate.set()
    now = app.store.stats.database_clock()
    scope = StatsFilter(owner="alice")
    after_sample = app.store.stats.job_stats(scope, recent_seconds=3600, throughput_seconds=now - (sample_at + 0.1))
    assert [b.window_finished for b in after_sample.buckets] == [1]
    whole = app.store.stats.job_stats(scope, recent_seconds=3600, throughput_seconds=300)
    assert [b.window_finished for b in whole.buckets] == [4]
    later = app.store.stats.job_stats(scope, recent_seconds=3600, throughput_seconds=0.001)
    assert [b.window_finished for b in later.buckets] == [0]


def test_stats_are_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/stats"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Stats"}
    assert {"401", "403", "422"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert {"totals", "by_project", "by_handler"} <= set(schemas["Stats"]["properties"])
    assert "description" in schemas["StatsGroup"]["properties"]["success_rate"]
    assert {p["name"] for p in operation["parameters"]} == {"project", "handler", "since", "owner"}
