"""Error groups over HTTP, on SQLite and PostgreSQL: a job's failures grouped by signature, paged, one group,
its export as JSONL, and retrying one group while the others stay failed."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from batchyard import Batchyard, ItemContext
from batchyard.core.errorsig import error_signature
from batchyard.errors import ItemError
from batchyard.store.schema import items as items_table

from ..integration.helpers import assert_counters_match_items, running_worker, wait_finished
from .conftest import Keys, bearer

FIXED = threading.Event()  # set: the handler stops failing (the cause of one group was fixed)


def _grouped(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    n = item["n"]
    if item["kind"] == "missing" and not FIXED.is_set():
        raise LookupError(f"user {n * 37} not found at /srv/users/{n}.json")
    if item["kind"] == "quota":
        raise ItemError(f"quota exceeded for 'acct-{n}' (limit {n * 10})", code="quota", retryable=False)
    if item["kind"] == "bad":
        raise ValueError(f"bad value {n}.5 in https://example.com/rows/{n}?x={n}")
    return {"ok": n}


def _failed_job(app: Batchyard) -> str:
    FIXED.clear()
    app.registry.register("grouped", _grouped)
    kinds = ["missing"] * 6 + ["quota"] * 3 + ["bad"] * 2 + ["fine"] * 4
    job = app.submit("grouped", [{"custom_id": f"k{i}", "n": i, "kind": k} for i, k in enumerate(kinds)], owner="alice")
    job_id = job.id
    with running_worker(app):
        wait_finished(app, job_id)
    return job_id


def test_failures_grouped_by_signature(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job_id = _failed_job(app)
    h = bearer(keys.alice)
    response = client.get(f"/api/v1/jobs/{job_id}/error-groups", headers=h)
    assert response.status_code == 200, response.text
    page = response.json()
    groups = page["data"]
    assert not page["has_more"] and page["next_cursor"] is None
    assert [(g["count"], g["type"], g["code"]) for g in groups] == [
        (6, "LookupError", None),
        (3, "ItemError", "quota"),
        (2, "ValueError", None),
    ]
    missing, quota, bad = groups
    assert missing["message"] == "user <num> not found at <path>"
    assert quota["message"] == "quota exceeded for <str> (limit <num>)"
    assert bad["message"] == "bad value <num> in <url>"
    assert missing["signature"] == error_signature({"type": "LookupError", "message": "user 1 not found at /x/y"})
    assert [s["key"] for s in missing["samples"]] == ["k0", "k1", "k2"]  # input order
    sample = missing["samples"][0]
    assert sample["error"]["message"] == "user 0 not found at /srv/users/0.json" and sample["attempts"] >= 1
    for g in groups:
        assert g["first_seen"] is not None and g["first_seen"] <= g["last_seen"]
    # the signatures are stored on the failed items and nowhere else
    with app.store.db.read() as conn:
        rows = conn.execute(
            select(items_table.c.status, items_table.c.error_signature).where(items_table.c.job_id == job_id)
        ).all()
    assert {sig for status, sig in rows if status == "failed"} == {g["signature"] for g in groups}
    assert all(sig is None for status, sig in rows if status != "failed")

    # pages of one group: each once, largest first
    seen, cursor = [], None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 1, "samples": 0, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/jobs/{job_id}/error-groups", params=params, headers=h).json()
        seen += [(g["signature"], g["samples"]) for g in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [(g["signature"], []) for g in groups]

    one = client.get(f"/api/v1/jobs/{job_id}/error-groups/{quota['signature']}?samples=5", headers=h).json()
    assert (one["count"], [s["key"] for s in one["samples"]]) == (3, ["k6", "k7", "k8"])


def test_export_one_group_as_jsonl(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job_id = _failed_job(app)
    groups = client.get(f"/api/v1/jobs/{job_id}/error-groups", headers=bearer(keys.alice)).json()["data"]
    response = client.get(
        f"/api/v1/jobs/{job_id}/error-groups/{groups[0]['signature']}/items.jsonl", headers=bearer(keys.vera)
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["key"] for line in lines] == [f"k{i}" for i in range(6)]
    assert lines[2]["payload"] == {"custom_id": "k2", "n": 2, "kind": "missing"}
    assert lines[2]["error"]["message"] == "user 74 not found at /srv/users/2.json"
    assert all(line["seq"] == int(line["key"][1:]) and line["finished_at"] for line in lines)


def test_retry_one_group_leaves_the_others_failed(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job_id = _failed_job(app)
    h = bearer(keys.alice)
    groups = client.get(f"/api/v1/jobs/{job_id}/error-groups", headers=h).json()["data"]
    missing = groups[0]["signature"]
    assert (
        client.post(
            f"/api/v1/jobs/{job_id}/retry", json={"error_group": missing}, headers=bearer(keys.vera)
        ).status_code
        == 403
    )
    assert (
        client.post(f"/api/v1/jobs/{job_id}/retry", json={"error_group": missing}, headers=bearer(keys.bob)).status_code
        == 404
    )

    FIXED.set()  # the cause is fixed: the group's items succeed when they run again
    response = client.post(f"/api/v1/jobs/{job_id}/retry", json={"error_group": missing}, headers=h)
    assert response.status_code == 200, response.text
    retried = response.json()
    assert retried["retried"] == 6 and retried["counts"]["failed"] == 5 and retried["counts"]["queued"] == 6
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=h).json()["data"]
    assert events[-1]["type"] == "retried" and events[-1]["data"] == {"items": 6, "error_group": missing}
    again = client.post(f"/api/v1/jobs/{job_id}/retry", json={"error_group": missing}, headers=h)
    assert again.status_code == 404 and again.json()["error"]["param"] == "error_group"
    assert client.get(f"/api/v1/jobs/{job_id}/error-groups/{missing}", headers=h).status_code == 404

    with running_worker(app):
        done = wait_finished(app, job_id)
    assert (done.job.status, done.job.succeeded, done.job.failed) == ("completed", 10, 5)
    left = client.get(f"/api/v1/jobs/{job_id}/error-groups", headers=h).json()["data"]
    assert [(g["signature"], g["count"]) for g in left] == [(g["signature"], g["count"]) for g in groups[1:]]
    assert_counters_match_items(app, job_id)

    # retrying every failure clears every group
    everything = client.post(f"/api/v1/jobs/{job_id}/retry", headers=h)
    assert everything.status_code == 200 and everything.json()["retried"] == 5
    assert client.get(f"/api/v1/jobs/{job_id}/error-groups", headers=h).json()["data"] == []
    app.service.cancel(job_id)


def test_bad_requests_are_clear_4xx(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job_id = _failed_job(app)
    h = bearer(keys.alice)
    base = f"/api/v1/jobs/{job_id}/error-groups"
    assert client.get(f"{base}/not-hex", headers=h).status_code == 422
    missing = client.get(f"{base}/{'0' * 16}", headers=h)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "signature"
    assert client.get(f"{base}/{'0' * 16}/items.jsonl", headers=h).status_code == 404
    assert client.get(base, params={"cursor": "1abc"}, headers=h).status_code == 400
    assert client.get(base, params={"limit": 0}, headers=h).status_code == 422
    assert client.get(base, headers=bearer(keys.bob)).status_code == 404  # another owner's job: as if missing
    assert client.get(base, headers=bearer(keys.root)).status_code == 200
    bad_body = client.post(f"/api/v1/jobs/{job_id}/retry", json={"error_group": "zz"}, headers=h)
    assert bad_body.status_code == 422
    assert client.post(f"/api/v1/jobs/{job_id}/retry", json={"error_groups": "x"}, headers=h).status_code == 422
    assert client.get("/api/v1/jobs/job_nope/error-groups", headers=h).status_code == 404
