"""Text the databases cannot store is refused at the door (422 naming where it is), and whatever is stored
always serializes (issue 11: a lone surrogate in a tag answered 500 yet created the job, and then the job list
answered 500 for its owner and every admin)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.store.schema import items as items_table
from batchyard.store.schema import jobs as jobs_table

from .conftest import Keys, bearer

LONE = "\ud800"  # a lone surrogate: json.dumps sends it as the escape "\\ud800", valid JSON that UTF-8 cannot encode


def post_raw(client: TestClient, path: str, body: Any, key: str) -> httpx2.Response:
    """POST ``body`` as JSON exactly as json.dumps writes it (ASCII, with escapes)."""
    return client.post(
        path, content=json.dumps(body).encode(), headers={**bearer(key), "Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"handler": "echo", "items": [1], "tags": ["ok", LONE]}, "tags.1"),
        ({"handler": "echo", "items": [1], "params": {"a": {"b": "x" + LONE}}}, "params.a.b"),
        ({"handler": "echo", "items": [1], "metadata": {LONE: 1}}, "metadata.\\ud800"),
        ({"handler": "echo", "items": [1], "metadata": {"k": [LONE]}}, "metadata.k.0"),
        ({"handler": "echo", "items": [1], "description": "a" + LONE + "b"}, "description"),
        ({"handler": "echo", "items": [{"text": LONE}]}, "items.0.text"),
        ({"handler": "echo", "items": ["ok", LONE]}, "items.1"),
        ({"handler": "echo", "items": [{"custom_id": "\udfff"}]}, "items.0.custom_id"),
        ({"handler": "ec" + LONE + "ho", "items": [1]}, "handler"),
        ({"handler": "echo", "items": [1], "project": LONE}, "project"),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_job_is_a_422_naming_where(
    client: TestClient, app: Batchyard, keys: Keys, body: dict[str, Any], param: str
) -> None:
    response = post_raw(client, "/api/v1/jobs", body, keys.alice)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_request"
    assert "surrogate" in error["message"]
    assert app.store.jobs.list_jobs() == []  # nothing was created


def test_raw_utf8_surrogate_bytes_are_refused_too(client: TestClient, app: Batchyard, keys: Keys) -> None:
    raw = b'{"handler": "echo", "items": [1], "tags": ["\xed\xa0\x80"]}'  # json.loads decodes them leniently
    response = client.post(
        "/api/v1/jobs", content=raw, headers={**bearer(keys.alice), "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert app.store.jobs.list_jobs() == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"handler": "echo", "items": [1], "description": "a\u0000b"}, "description"),
        ({"handler": "echo", "items": [1], "project": "\u0000"}, "project"),
        ({"handler": "ec\u0000ho", "items": [1]}, "handler"),
        ({"handler": "echo", "input_file_id": "file_\u0000"}, "input_file_id"),
    ],
)
def test_nul_where_it_would_reach_a_text_column_is_a_422(
    client: TestClient, app: Batchyard, keys: Keys, body: dict[str, Any], param: str
) -> None:
    response = client.post("/api/v1/jobs", json=body, headers=bearer(keys.alice))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param and "NUL" in response.json()["error"]["message"]
    assert app.store.jobs.list_jobs() == []


def test_nul_inside_json_values_is_stored_and_given_back(client: TestClient, keys: Keys) -> None:
    """Params, metadata and tags are stored as JSON text, which escapes NUL: both databases hold it."""
    body = {
        "handler": "echo",
        "items": [1],
        "params": {"a": "x\u0000"},
        "metadata": {"m": "\u0000"},
        "tags": ["t\u0000"],
    }
    response = client.post("/api/v1/jobs", json=body, headers=bearer(keys.alice))
    assert response.status_code == 201, response.text
    job = client.get(f"/api/v1/jobs/{response.json()['id']}", headers=bearer(keys.alice)).json()
    assert (job["params"], job["metadata"], job["tags"]) == ({"a": "x\u0000"}, {"m": "\u0000"}, ["t\u0000"])


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/api/v1/keys", {"name": LONE}, "name"),
        ("/api/v1/keys", {"name": "a\u0000"}, "name"),
        ("/api/v1/keys", {"owner": "al" + LONE + "ice"}, "owner"),
        ("/api/v1/jobs/bulk", {"action": "cancel", "ids": [LONE]}, "ids.0"),
        ("/api/v1/jobs/bulk", {"action": "cancel", "ids": ["job_\u0000"]}, "ids.0"),
        ("/api/v1/session", {"api_key": "by_" + LONE}, "api_key"),
    ],
)
def test_every_json_body_refuses_unstorable_text(
    client: TestClient, keys: Keys, path: str, body: dict[str, Any], param: str
) -> None:
    response = post_raw(client, path, body, keys.root)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param


def test_a_move_reason_with_unstorable_text_is_refused(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [1], owner="alice")
    for reason in (LONE, "a\u0000b"):
        response = post_raw(client, f"/api/v1/jobs/{job.id}/pause", {"reason": reason}, keys.alice)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "reason"
    assert app.store.jobs.get_job(job.id).status == "queued"


def test_an_unstorable_idempotency_key_is_refused(client: TestClient, app: Batchyard, keys: Keys) -> None:
    response = client.post(
        "/api/v1/jobs",
        json={"handler": "echo", "items": [1]},
        headers={**bearer(keys.alice), "Idempotency-Key": "a\x00b"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "Idempotency-Key"
    assert app.store.jobs.list_jobs() == []


def test_odd_text_already_stored_still_serializes(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """A job stored before the door check (or written by other code) must not break anyone's job list."""
    job = app.submit("echo", [{"n": 1}], owner="alice")
    job.wait(timeout=60)
    lone = json.dumps("\ud800")  # "\\ud800": how JSON text keeps a lone surrogate
    with app.store.db.write() as conn:
        conn.execute(
            jobs_table.update()
            .where(jobs_table.c.id == job.id)
            .values(tags=f"[{lone}]", params=f"{{{lone}: {lone}}}", meta=f'{{"m": [{lone}]}}')
        )
        conn.execute(
            items_table.update()
            .where(items_table.c.job_id == job.id)
            .values(
                payload=f'{{"t": {lone}}}',
                result=f'{{"r": {lone}}}',
                error=f'{{"type": "ValueError", "message": {lone}}}',
            )
        )
    for key in (keys.alice, keys.root):
        listed = client.get("/api/v1/jobs", headers=bearer(key))
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"][0]["tags"] == ["\ufffd"]
        got = client.get(f"/api/v1/jobs/{job.id}", headers=bearer(key))
        assert got.status_code == 200 and got.json()["params"] == {"\ufffd": "\ufffd"}
    page = client.get(f"/api/v1/jobs/{job.id}/items", headers=bearer(keys.alice))
    assert page.status_code == 200 and page.json()["data"][0]["result"] == {"r": "\ufffd"}
    one = client.get(f"/api/v1/jobs/{job.id}/items/{page.json()['data'][0]['key']}", headers=bearer(keys.alice))
    assert one.status_code == 200, one.text
    assert one.json()["payload"] == {"t": "\ufffd"} and one.json()["error"]["message"] == "\ufffd"
    for name in ("results.jsonl", "errors.jsonl", "results.csv"):
        assert client.get(f"/api/v1/jobs/{job.id}/{name}", headers=bearer(keys.alice)).status_code == 200
    assert client.get("/api/v1/jobs.csv", headers=bearer(keys.root)).status_code == 200


def test_an_error_quoting_odd_text_still_renders() -> None:
    from batchyard.api.errors import ErrorJSONResponse

    assert json.loads(bytes(ErrorJSONResponse({"message": "no job '\ud800'"}).body)) == {"message": "no job '\ud800'"}
