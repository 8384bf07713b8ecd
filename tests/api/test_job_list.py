"""The job list's filters, sorts and cursors over HTTP (on SQLite and PostgreSQL), and its CSV export.

The property test pages through any combination of filters and any sort with a random page size and checks that
every matching job comes back exactly once, in order: the expected list is computed here, in Python, from every
job's fields (read once, unfiltered, by an admin).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard import Batchyard

from ..integration.helpers import running_worker, wait_finished
from .conftest import Keys, bearer

ACTIVE = {"queued", "running", "paused", "finalizing", "cancelling"}
FINISHED = {"completed", "failed", "cancelled", "expired"}
SORTS = {"created_at": "created_at", "priority": "priority", "updated_at": "last_activity_at", "total": "total"}


@dataclass(frozen=True)
class Fleet:
    """Jobs of alice and bob in several statuses, handlers, projects, tags and sizes; every job's JSON."""

    jobs: list[dict[str, Any]]
    start: float
    middle: float


@pytest.fixture
def fleet(app: Batchyard, client: TestClient, keys: Keys) -> Fleet:
    later = time.time() + 3600  # scheduled later: stays queued while a worker runs the others
    made: list[str] = []
    middle = 0.0
    for i in range(18):
        owner = "alice" if i % 3 else "bob"
        handler = "echo" if i % 2 else "sleep"
        items = [{"n": n, "ms": 1} for n in range(1 + i % 4)]
        job = app.submit(
            handler,
            items,
            owner=owner,
            project=("web", "batch", None)[i % 3],
            priority=i % 3,
            description=f"March mailing {i}" if i % 4 == 0 else f"report #{i}",
            tags=["march", f"t{i % 2}"] if i % 5 == 0 else [f"t{i % 2}"],
            scheduled_at=None if i % 3 == 1 else later,
        )
        made.append(job.id)
        if i == 9:  # the database's clock, as created_at is
            middle = app.service.get(job.id).job.created_at
        time.sleep(0.002)
    # statuses: 1, 4, 7, ... run to completion; of the rest, some are paused and some cancelled
    with running_worker(app):
        for i, job_id in enumerate(made):
            if i % 3 == 1:
                wait_finished(app, job_id)
    for i, job_id in enumerate(made):
        if i % 3 == 0 and i % 2 == 0:
            app.service.pause(job_id)
        elif i % 3 == 2 and i % 4 == 1:
            app.service.cancel(job_id)
    data = client.get("/api/v1/jobs?limit=200", headers=bearer(keys.root)).json()["data"]
    assert len(data) == 18
    assert {j["status"] for j in data} >= {"queued", "paused", "completed", "cancelled"}
    return Fleet(jobs=data, start=min(j["created_at"] for j in data), middle=middle)


def _matches(job: dict[str, Any], params: dict[str, Any]) -> bool:
    statuses: set[str] = set()
    for value in params.get("status", []):
        for word in value.split(","):
            statuses |= ACTIVE if word == "active" else FINISHED if word == "finished" else {word}
    if statuses and job["status"] not in statuses:
        return False
    for name in ("handler", "project", "owner"):
        if name in params and job[name] != params[name]:
            return False
    if "tag" in params and params["tag"] not in job["tags"]:
        return False
    if "created_after" in params and job["created_at"] < params["created_after"]:
        return False
    if "created_before" in params and job["created_at"] >= params["created_before"]:
        return False
    if "q" in params:
        q = params["q"]
        text = [(job["description"] or "").lower(), *(t.lower() for t in job["tags"])]
        if not job["id"].startswith(q) and not any(q.lower() in t for t in text):
            return False
    return True


def _expected(fleet: Fleet, params: dict[str, Any], sort: str, owner: str | None) -> list[str]:
    field = SORTS[sort.lstrip("-")]
    chosen = [j for j in fleet.jobs if _matches(j, params) and (owner is None or j["owner"] == owner)]
    chosen.sort(key=lambda j: (j["counts"]["total"] if field == "total" else j[field], j["id"]), reverse=sort[0] == "-")
    return [j["id"] for j in chosen]


def _pages(client: TestClient, key: str, params: dict[str, Any], limit: int) -> Iterator[dict[str, Any]]:
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/jobs", params=query, headers=bearer(key))
        assert response.status_code == 200, response.text
        page = response.json()
        yield page
        if not page["has_more"]:
            return
        cursor = page["next_cursor"]
    raise AssertionError("paging did not end")


STATUS_WORDS = ["queued", "running", "paused", "completed", "failed", "cancelled", "active", "finished"]


@st.composite
def filters(draw: st.DrawFn, fleet: Fleet) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if draw(st.booleans()):
        words = draw(st.lists(st.sampled_from(STATUS_WORDS), min_size=1, max_size=3, unique=True))
        params["status"] = [",".join(words)] if draw(st.booleans()) else words  # comma-separated or repeated
    for name, values in (
        ("handler", ["echo", "sleep", "nope"]),
        ("project", ["web", "batch"]),
        ("tag", ["march", "t0", "t1"]),
        ("q", ["march", "REPORT", "#1", "job_", fleet.jobs[3]["id"], fleet.jobs[3]["id"][:16]]),
    ):
        if draw(st.integers(0, 3)) == 0:
            params[name] = draw(st.sampled_from(values))
    if draw(st.integers(0, 3)) == 0:
        params["created_after"] = draw(st.sampled_from([fleet.start, fleet.middle]))
    if draw(st.integers(0, 3)) == 0:
        params["created_before"] = draw(st.sampled_from([fleet.middle, time.time() + 60]))
    return params


def test_paging_through_any_filter_returns_each_match_once_in_order(
    client: TestClient, keys: Keys, fleet: Fleet
) -> None:
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        params=filters(fleet),
        sort=st.sampled_from([*SORTS, *(f"-{s}" for s in SORTS)]),
        limit=st.integers(1, 7),
        who=st.sampled_from(["alice", "root", "root-bob"]),
    )
    def check(params: dict[str, Any], sort: str, limit: int, who: str) -> None:
        key = keys.alice if who == "alice" else keys.root
        owner = "alice" if who == "alice" else "bob" if who == "root-bob" else None
        query = {**params, "sort": sort, **({"owner": "bob"} if who == "root-bob" else {})}
        seen = [job["id"] for page in _pages(client, key, query, limit) for job in page["data"]]
        assert seen == _expected(fleet, params, sort, owner), (query, limit)

    check()


def test_filters_by_example(client: TestClient, keys: Keys, fleet: Fleet) -> None:
    def ids(key: str = keys.root, **params: Any) -> list[str]:
        response = client.get("/api/v1/jobs", params={"limit": 200, **params}, headers=bearer(key))
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["data"]]

    by_status = {s: [j["id"] for j in fleet.jobs if j["status"] == s] for s in ACTIVE | FINISHED}
    active = [j["id"] for j in fleet.jobs if j["status"] in ACTIVE]
    assert active and ids(status="active") == active
    assert (
        ids(status="queued,paused")
        == ids(status=["queued", "paused"])
        == [j["id"] for j in fleet.jobs if j["status"] in ("queued", "paused")]
    )
    assert ids(status="finished") == [j["id"] for j in fleet.jobs if j["status"] in FINISHED]
    assert ids(status="completed") == by_status["completed"] and by_status["completed"]
    assert ids(status="active,completed") == [j["id"] for j in fleet.jobs if j["status"] != "cancelled"]
    march = ids(q="MARCH")  # case-insensitive, description or tag
    assert march and all(
        "march" in (j["description"] or "").lower() or "march" in j["tags"] for j in fleet.jobs if j["id"] in march
    )
    target = fleet.jobs[5]["id"]
    assert ids(q=target) == [target] and target in ids(q=target[:14])
    assert ids(handler="echo", project="web") == [
        j["id"] for j in fleet.jobs if j["handler"] == "echo" and j["project"] == "web"
    ]
    window = ids(created_after=fleet.start, created_before=fleet.middle)
    assert window == [j["id"] for j in fleet.jobs if j["created_at"] < fleet.middle] and len(window) == 9
    # members see their own; naming themselves is fine, another owner is a 403 (never silently ignored)
    assert ids(keys.alice) == [j["id"] for j in fleet.jobs if j["owner"] == "alice"]
    assert ids(keys.alice, owner="alice") == ids(keys.alice)
    assert ids(keys.vera) == ids(keys.alice)  # a viewer of alice's owner reads the same list
    refused = client.get("/api/v1/jobs", params={"owner": "bob"}, headers=bearer(keys.alice))
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "owner"
    assert ids(owner="bob") == [j["id"] for j in fleet.jobs if j["owner"] == "bob"]


def test_bad_filters_are_clear_4xx(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.alice)
    for params in (
        {"status": "runing"},
        {"status": "running,"},
        {"status": "Running"},
        {"sort": "owner"},
        {"created_after": -1},
        {"limit": 201},
    ):
        response = client.get("/api/v1/jobs", params=params, headers=h)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["param"].startswith(next(iter(params))), response.text
    unknown = client.get("/api/v1/jobs", params={"status": "queued,runing"}, headers=h).json()["error"]["message"]
    assert "unknown status 'runing'" in unknown and "active" in unknown
    other_sort = client.get("/api/v1/jobs", params={"limit": 1, "sort": "priority"}, headers=h)
    assert other_sort.status_code == 200
    _create_one(client, keys.alice)
    _create_one(client, keys.alice)
    cursor = client.get("/api/v1/jobs", params={"limit": 1}, headers=h).json()["next_cursor"]
    mixed = client.get("/api/v1/jobs", params={"cursor": cursor, "sort": "-total"}, headers=h)
    assert mixed.status_code == 400 and "sort order" in mixed.json()["error"]["message"]


def _create_one(client: TestClient, key: str) -> str:
    response = client.post("/api/v1/jobs", json={"handler": "echo", "items": [1]}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_csv_export_takes_the_same_filters_and_parses(client: TestClient, keys: Keys, fleet: Fleet) -> None:
    for params in ({"status": "active", "q": "report"}, {"handler": "echo", "sort": "priority"}, {"owner": "alice"}):
        listed = client.get("/api/v1/jobs", params={**params, "limit": 200}, headers=bearer(keys.root)).json()["data"]
        response = client.get("/api/v1/jobs.csv", params=params, headers=bearer(keys.root))
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["id"] for r in rows] == [j["id"] for j in listed], params
        for row, job in zip(rows, listed, strict=True):
            assert (row["status"], row["handler"], int(row["total"])) == (
                job["status"],
                job["handler"],
                job["counts"]["total"],
            )
            assert row["tags"] == " ".join(job["tags"]) and row["description"] == (job["description"] or "")
    mine = client.get("/api/v1/jobs.csv", headers=bearer(keys.alice))
    assert {r["owner"] for r in csv.DictReader(io.StringIO(mine.text))} == {"alice"}
    assert client.get("/api/v1/jobs.csv", params={"owner": "bob"}, headers=bearer(keys.alice)).status_code == 403
    assert client.get("/api/v1/jobs.csv", params={"status": "nope"}, headers=bearer(keys.alice)).status_code == 422
