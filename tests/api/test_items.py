"""Items over HTTP: pages in input order with an opaque cursor, status filters, one item with its last error."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard, ItemContext
from batchyard.services import items as item_service

from .conftest import Keys, bearer

N_ITEMS = 25


@pytest.fixture
def job_id(app: Batchyard) -> str:
    """A finished job of alice's: 25 items keyed row-00..row-24; the odd ones failed."""

    @app.handler("odd_fails", max_attempts=1)
    def odd_fails(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        if item["n"] % 2:
            raise ValueError(f"odd number {item['n']}")
        ctx.add_usage(cost=0.5, tokens=3)
        return {"double": item["n"] * 2}

    job = app.submit("odd_fails", [{"key": f"row-{i:02d}", "n": i} for i in range(N_ITEMS)], owner="alice")
    view = job.wait(timeout=60)
    assert (view.job.succeeded, view.job.failed) == (13, 12)
    return job.id


def all_pages(client: TestClient, url: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; returns every page's JSON."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=bearer(key))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if not pages[-1]["has_more"]:
            assert pages[-1]["next_cursor"] is None
            return pages
        cursor = pages[-1]["next_cursor"]
        assert len(pages) < 100, "pagination does not end"


def test_pages_follow_the_input_order(client: TestClient, keys: Keys, job_id: str) -> None:
    pages = all_pages(client, f"/api/v1/jobs/{job_id}/items", keys.alice, limit=10)
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    items = [item for page in pages for item in page["data"]]
    assert [item["seq"] for item in items] == list(range(N_ITEMS))
    assert [item["key"] for item in items] == [f"row-{i:02d}" for i in range(N_ITEMS)]
    first, second = items[0], items[1]
    assert first["status"] == "succeeded" and first["result"] == {"double": 0} and first["error"] is None
    assert first["usage"] == {"tokens": 3} and first["duration_seconds"] >= 0
    assert second["status"] == "failed" and second["error"]["message"] == "odd number 1"
    assert first["payload"] is None  # payloads only come with a single item


def test_default_page_is_100_and_limit_is_bounded(client: TestClient, keys: Keys, job_id: str) -> None:
    url = f"/api/v1/jobs/{job_id}/items"
    page = client.get(url, headers=bearer(keys.alice)).json()
    assert len(page["data"]) == N_ITEMS and page["has_more"] is False
    for bad in (0, 501):
        response = client.get(url, params={"limit": bad}, headers=bearer(keys.alice))
        assert response.status_code == 422
        assert response.json()["error"]["param"] == "limit"


def test_status_filter_one_or_several(client: TestClient, keys: Keys, job_id: str) -> None:
    url = f"/api/v1/jobs/{job_id}/items"
    failed = [i for p in all_pages(client, url, keys.alice, status="failed", limit=5) for i in p["data"]]
    assert [i["seq"] for i in failed] == list(range(1, N_ITEMS, 2))
    assert all(i["status"] == "failed" for i in failed)
    both = client.get(url, params={"status": ["failed", "succeeded"]}, headers=bearer(keys.alice)).json()
    assert [i["seq"] for i in both["data"]] == list(range(N_ITEMS))
    none = client.get(url, params={"status": "cancelled"}, headers=bearer(keys.alice)).json()
    assert none == {"data": [], "has_more": False, "next_cursor": None}
    bad = client.get(url, params={"status": "finished"}, headers=bearer(keys.alice))
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status.0"


def test_a_filtered_page_reads_a_bounded_window(
    client: TestClient, keys: Keys, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a status filter each request scans at most ITEM_SCAN_WINDOW positions: pages can come back short,
    but following the cursor still yields every match exactly once."""
    monkeypatch.setattr(item_service, "ITEM_SCAN_WINDOW", 4)
    pages = all_pages(client, f"/api/v1/jobs/{job_id}/items", keys.alice, status="failed", limit=3)
    assert len(pages) > N_ITEMS // 4 - 1  # one request per window at least
    assert all(len(p["data"]) <= 3 for p in pages)
    assert [i["seq"] for p in pages for i in p["data"]] == list(range(1, N_ITEMS, 2))


def test_a_bad_cursor_is_a_clear_422(client: TestClient, keys: Keys, job_id: str) -> None:
    for cursor in ("garbage!", "s", "s-1", "S10", "s" + "f" * 16):
        response = client.get(f"/api/v1/jobs/{job_id}/items", params={"cursor": cursor}, headers=bearer(keys.alice))
        assert response.status_code == 422
        assert response.json()["error"]["param"] == "cursor"
    past_the_end = client.get(
        f"/api/v1/jobs/{job_id}/items", params={"cursor": "s" + "f" * 15}, headers=bearer(keys.alice)
    )
    assert past_the_end.json() == {"data": [], "has_more": False, "next_cursor": None}


def test_get_one_item_with_payload_result_and_error(client: TestClient, keys: Keys, job_id: str) -> None:
    ok = client.get(f"/api/v1/jobs/{job_id}/items/row-04", headers=bearer(keys.alice)).json()
    assert ok["payload"] == {"key": "row-04", "n": 4}
    assert ok["result"] == {"double": 8} and ok["attempts"] == 1 and ok["usage"] == {"tokens": 3}
    assert ok["started_at"] <= ok["finished_at"]

    failed = client.get(f"/api/v1/jobs/{job_id}/items/row-03", headers=bearer(keys.alice)).json()
    assert failed["status"] == "failed" and failed["result"] is None
    error = failed["error"]
    assert (error["type"], error["message"], error["attempt"]) == ("ValueError", "odd number 3", 1)
    assert "ValueError: odd number 3" in error["traceback"]

    missing = client.get(f"/api/v1/jobs/{job_id}/items/row-99", headers=bearer(keys.alice))
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"job {job_id!r} has no item 'row-99'"


def test_keys_with_slashes_and_odd_characters(client: TestClient, app: Batchyard, keys: Keys) -> None:
    odd = ["a/b/c", "with space", "ünïcødé", "50%"]
    job = app.submit("echo", [{"key": k} for k in odd], owner="alice")
    job.wait(timeout=60)
    for key in odd:
        response = client.get(f"/api/v1/jobs/{job.id}/items/{key.replace('%', '%25')}", headers=bearer(keys.alice))
        assert response.status_code == 200, (key, response.text)
        assert response.json()["key"] == key


def test_another_owners_job_is_missing(client: TestClient, keys: Keys, job_id: str) -> None:
    """bob gets exactly the answer a wrong id gets; the viewer and the admin can read; no key is 401."""
    for url in (f"/api/v1/jobs/{job_id}/items", f"/api/v1/jobs/{job_id}/items/row-00"):
        as_bob = client.get(url, headers=bearer(keys.bob))
        assert as_bob.status_code == 404
        assert as_bob.json()["error"]["message"] == f"no job {job_id!r}"
        wrong_id = client.get(url.replace(job_id, "job_000000000000ffffffff"), headers=bearer(keys.alice))
        assert wrong_id.status_code == 404 and wrong_id.json()["error"]["code"] == as_bob.json()["error"]["code"]
        assert client.get(url, headers=bearer(keys.vera)).status_code == 200
        assert client.get(url, headers=bearer(keys.root)).status_code == 200
        assert client.get(url).status_code == 401


def test_an_id_postgres_cannot_store_is_just_missing(client: TestClient, keys: Keys, job_id: str) -> None:
    assert client.get("/api/v1/jobs/job_%00/items", headers=bearer(keys.alice)).status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}/items/a%00b", headers=bearer(keys.alice)).status_code == 404
