"""Client mistakes are 4xx with the standard error shape, never a 5xx: hand-made cursors, out-of-range
positions, bodies too large without a Content-Length."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard

from .conftest import Keys, bearer


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HAND_MADE_CURSORS = [
    _b64("abc"),
    _b64(["-created_at", 1.0]),
    _b64(True),
    _b64(10**30),
    _b64(None),
    _b64({"a": 1}),
    _b64(["-created_at", None, "x"]),
    _b64(["-created_at", "abc", "x"]),
    _b64(["-created_at", [1], "x"]),
    _b64(["-created_at", True, "x"]),
    _b64(["-created_at", 10**30, "x"]),
    _b64(["-created_at", {"a": 1}, "x"]),
    _b64(["-created_at", 1.0, 5]),
    _b64(["-created_at", 1.0, "a\u0000b"]),
    _b64(["-created_at", 1.0, "\ud800"]),
    _b64(["-priority", 1.5, "x"]),
    _b64(["-priority", 10**30, "x"]),
    _b64(["total", -(10**19), "x"]),
    _b64(["-updated_at", "1", "x"]),
    "!!!",
    "a",
    "=",
    "AAAA",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
]


def _assert_cursor_refused(response: httpx2.Response) -> None:
    assert response.status_code in (400, 422), (response.status_code, response.text)
    error = response.json()["error"]
    assert error["param"] == "cursor" and error["message"], error


@pytest.mark.parametrize("cursor", HAND_MADE_CURSORS)
def test_a_hand_made_job_list_cursor_is_a_client_error(client: TestClient, keys: Keys, cursor: str) -> None:
    sort = (
        json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)) or "null")[0]
        if cursor.startswith("WyI")
        else "-created_at"
    )
    for who in (keys.alice, keys.root):
        _assert_cursor_refused(client.get("/api/v1/jobs", params={"cursor": cursor, "sort": sort}, headers=bearer(who)))


def test_a_real_cursor_still_pages_through_every_sort(client: TestClient, app: Batchyard, keys: Keys) -> None:
    for n in range(5):
        app.submit("echo", [{"n": i} for i in range(n + 1)], owner="alice", priority=n % 2)
    for sort in ("created_at", "-created_at", "priority", "-priority", "updated_at", "-updated_at", "total", "-total"):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/jobs", params=params, headers=bearer(keys.alice)).json()
            seen += [job["id"] for job in page["data"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert len(seen) == len(set(seen)) == 5, sort


@pytest.mark.parametrize("cursor", ["abc", "s", "s" + "f" * 16, "s-1", "s1\u0000", "1", "s%00", "s\u00e9"])
def test_a_hand_made_items_cursor_is_a_client_error(
    client: TestClient, app: Batchyard, keys: Keys, cursor: str
) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    _assert_cursor_refused(
        client.get(f"/api/v1/jobs/{job.id}/items", params={"cursor": cursor}, headers=bearer(keys.alice))
    )


@pytest.mark.parametrize("cursor", ["abc", "1~file_x", "9" * 17 + "~file_" + "0" * 24, "1.5~file_" + "g" * 24])
def test_a_hand_made_files_cursor_is_a_client_error(client: TestClient, keys: Keys, cursor: str) -> None:
    _assert_cursor_refused(client.get("/api/v1/files", params={"cursor": cursor}, headers=bearer(keys.alice)))


@pytest.mark.parametrize("after", [str(10**30), str(2**63), str(2**31), "-1", "1.5", "abc"])
def test_an_out_of_range_event_position_is_a_client_error(
    client: TestClient, app: Batchyard, keys: Keys, after: str
) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    response = client.get(f"/api/v1/jobs/{job.id}/events", params={"after": after}, headers=bearer(keys.alice))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "after"


def test_the_last_event_position_is_accepted(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    response = client.get(f"/api/v1/jobs/{job.id}/events", params={"after": 2**31 - 1}, headers=bearer(keys.alice))
    assert response.status_code == 200 and response.json()["data"] == []


def test_a_chunked_body_over_the_limit_is_413(client: TestClient, app: Batchyard, keys: Keys) -> None:
    limit = app.settings.max_request_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"handler": "echo", "items": ['
        piece = b'"' + b"x" * (1 << 20) + b'",'
        for _ in range(limit // len(piece) + 2):
            yield piece
        yield b'"x"]}'

    response = client.post(
        "/api/v1/jobs", content=chunks(), headers={**bearer(keys.alice), "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"
    assert "limit" in response.json()["error"]["message"]
    assert client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"] == []


def test_a_number_out_of_a_columns_range_is_a_422_naming_it(client: TestClient, app: Batchyard, keys: Keys) -> None:
    body = {"handler": "echo", "items": [1], "max_failures": 10**30}
    response = client.post("/api/v1/jobs", json=body, headers=bearer(keys.alice))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "max_failures"
    assert app.store.jobs.list_jobs() == []


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"handler": "echo", "items": [1], "scheduled_at": Infinity}', "scheduled_at"),
        (b'{"handler": "echo", "items": [1], "params": {"x": NaN}}', "params.x"),
        (b'{"handler": "echo", "items": [1], "metadata": {"x": [-Infinity]}}', "metadata.x.0"),
        (b'{"handler": "echo", "items": [{"n": NaN}]}', "items.0.n"),
    ],
)
def test_nan_and_infinity_are_not_json(client: TestClient, app: Batchyard, keys: Keys, raw: bytes, param: str) -> None:
    """Python's json module reads them, but they are not JSON: stored, they would come back as something else."""
    response = client.post(
        "/api/v1/jobs", content=raw, headers={**bearer(keys.alice), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert app.store.jobs.list_jobs() == []
