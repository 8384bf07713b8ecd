"""The OpenAI-compatible /v1/files and /v1/batches over the in-process app, on SQLite and PostgreSQL: File and Batch
objects with every key, OpenAI's error shape and codes, validation after create with every bad line, listing,
cancel, expiry, and the output and error files written when a batch ends.

Execution against an upstream (the ``openai`` handler with ``batchyard mock-upstream``) is covered end to end with
the official SDK in tests/e2e/test_openai_sdk.py; here the ``openai`` handler is not registered, so batches only
run where a test says so.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, get_args, get_type_hints

import pytest
from fastapi.testclient import TestClient
from openai.types import batch_create_params

from batchyard import Batchyard
from batchyard.api import create_app
from batchyard.openai_wire import job_id_of
from batchyard.services.auth import Principal, Role
from batchyard.services.maintenance import Maintenance

from .conftest import Keys, bearer

CHAT = "/v1/chat/completions"
BATCH_KEYS = [
    "id",
    "object",
    "endpoint",
    "model",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
    "usage",
]


def request_line(custom_id: str, model: str = "m1", url: str = CHAT, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": model, "messages": [{"role": "user", "content": custom_id}], **body},
    }


def jsonl(*lines: Any) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def upload(client: TestClient, key: str, content: bytes, filename: str = "in.jsonl", purpose: str = "batch") -> Any:
    return client.post("/v1/files", files={"file": (filename, content)}, data={"purpose": purpose}, headers=bearer(key))


def create(client: TestClient, key: str, file_id: str, endpoint: str = CHAT, **extra: Any) -> Any:
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
    return client.post("/v1/batches", json=body, headers=bearer(key))


def new_batch(client: TestClient, key: str, content: bytes, **extra: Any) -> dict[str, Any]:
    uploaded = upload(client, key, content)
    assert uploaded.status_code == 200, uploaded.text
    created = create(client, key, uploaded.json()["id"], **extra)
    assert created.status_code == 200, created.text
    return dict(created.json())


def get_batch(client: TestClient, key: str, batch_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/batches/{batch_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_openai_error(response: Any, status: int, code: str | None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert (error["code"], error["param"]) == (code, param), error
    return dict(error)


# -- files --------------------------------------------------------------------------------------------------------


def test_a_file_round_trip(client: TestClient, keys: Keys) -> None:
    content = jsonl(request_line("a"), request_line("b")) + "é\r\n".encode()  # exact bytes, whatever they are
    uploaded = upload(client, keys.alice, content, filename="march.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    file = uploaded.json()
    assert list(file) == [
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    ]
    assert (file["object"], file["bytes"], file["filename"], file["purpose"], file["status"]) == (
        "file",
        len(content),
        "march.jsonl",
        "batch",
        "processed",
    )
    assert isinstance(file["created_at"], int) and file["expires_at"] == file["created_at"] + 30 * 86400
    assert client.get(f"/v1/files/{file['id']}", headers=bearer(keys.alice)).json() == file
    assert client.get(f"/v1/files/{file['id']}/content", headers=bearer(keys.alice)).content == content
    # the same file in the native API
    assert client.get(f"/api/v1/files/{file['id']}", headers=bearer(keys.alice)).json()["bytes"] == len(content)

    deleted = client.delete(f"/v1/files/{file['id']}", headers=bearer(keys.alice))
    assert deleted.json() == {"id": file["id"], "object": "file", "deleted": True}
    missing = assert_openai_error(
        client.get(f"/v1/files/{file['id']}", headers=bearer(keys.alice)), 404, "not_found", "file_id"
    )
    assert file["id"] in missing["message"]


def test_upload_rules(client: TestClient, app: Batchyard, keys: Keys) -> None:
    error = assert_openai_error(upload(client, keys.alice, b"{}\n", filename="in.csv"), 400, None, "file")
    assert error["message"] == "Invalid file format for Batch API. Must be .jsonl"
    assert_openai_error(upload(client, keys.alice, b"x", purpose="nonsense"), 400, "invalid_value", "purpose")
    no_purpose = client.post("/v1/files", files={"file": ("a.jsonl", b"{}")}, headers=bearer(keys.alice))
    assert_openai_error(no_purpose, 400, "missing_required_parameter", "purpose")
    no_file = client.post("/v1/files", data={"purpose": "batch"}, files={"x": ("a", b"1")}, headers=bearer(keys.alice))
    assert_openai_error(no_file, 400, "missing_required_parameter", "file")
    # other purposes take any name, and never expire by default
    other = upload(client, keys.alice, b"notes", filename="notes.txt", purpose="user_data").json()
    assert (other["purpose"], other["expires_at"]) == ("user_data", None)
    timed = client.post(
        "/v1/files",
        files={"file": ("t.jsonl", b"{}\n")},
        data={"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
        headers=bearer(keys.alice),
    ).json()
    assert timed["expires_at"] - timed["created_at"] == 3600
    bad_expiry = client.post(
        "/v1/files",
        files={"file": ("t.jsonl", b"{}\n")},
        data={"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "60"},
        headers=bearer(keys.alice),
    )
    assert_openai_error(bad_expiry, 400, "invalid_value", "expires_after.seconds")


def test_an_oversized_upload_is_a_400_and_nothing_is_kept(client: TestClient, app: Batchyard, keys: Keys) -> None:
    app.settings.max_upload_bytes = 1000
    error = assert_openai_error(upload(client, keys.alice, b"x" * 200_000), 400, None, None)
    assert error["message"] == "File is too large."
    error = assert_openai_error(upload(client, keys.alice, b"x" * 1001), 400, None, None)  # found while streaming
    assert error["message"] == "File is too large."
    assert client.get("/v1/files", headers=bearer(keys.alice)).json()["data"] == []
    folder = app.storage.root / "uploads"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_listing_files(client: TestClient, keys: Keys) -> None:
    ids = [upload(client, keys.alice, b"{}\n", filename=f"f{i}.jsonl").json()["id"] for i in range(5)]
    ids.append(upload(client, keys.alice, b"n", filename="n.txt", purpose="user_data").json()["id"])
    upload(client, keys.bob, b"{}\n")

    def page(**query: Any) -> dict[str, Any]:
        response = client.get("/v1/files", params=query, headers=bearer(keys.alice))
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = page()
    assert [f["id"] for f in everything["data"]] == ids[::-1] and everything["has_more"] is False
    assert (everything["object"], everything["first_id"], everything["last_id"]) == ("list", ids[-1], ids[0])
    assert [f["id"] for f in page(purpose="batch")["data"]] == ids[:5][::-1]
    assert [f["id"] for f in page(order="asc")["data"]] == ids
    first = page(order="asc", limit=4)
    assert [f["id"] for f in first["data"]] == ids[:4] and first["has_more"] is True
    rest = page(order="asc", limit=4, after=first["last_id"])
    assert [f["id"] for f in rest["data"]] == ids[4:] and rest["has_more"] is False
    assert_openai_error(client.get("/v1/files?limit=0", headers=bearer(keys.alice)), 400, "invalid_value", "limit")
    assert_openai_error(
        client.get("/v1/files?after=file_x", headers=bearer(keys.alice)), 400, "invalid_request", "after"
    )


# -- creating batches --------------------------------------------------------------------------------------------


def test_create_answers_validating_with_every_key_then_the_batch_runs(client: TestClient, keys: Keys) -> None:
    batch = new_batch(client, keys.alice, jsonl(request_line("a"), request_line("b")), metadata={"team": "search"})
    assert list(batch) == BATCH_KEYS
    assert batch["id"].startswith("batch_") and batch["object"] == "batch"
    assert batch["status"] == "validating" and batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["expires_at"] == batch["created_at"] + 86400
    assert (batch["metadata"], batch["endpoint"], batch["completion_window"]) == ({"team": "search"}, CHAT, "24h")
    assert batch["usage"] == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    # validated right after the answer (the in-process client runs the background task before returning)
    now = get_batch(client, keys.alice, batch["id"])
    assert now["status"] == "in_progress" and now["model"] == "m1" and isinstance(now["in_progress_at"], int)
    assert now["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    # the same batch is a job of the openai handler in the native API
    job = client.get(f"/api/v1/jobs/{job_id_of(batch['id'])}", headers=bearer(keys.alice)).json()
    assert (job["handler"], job["status"], job["counts"]["total"], job["metadata"]) == (
        "openai",
        "queued",
        2,
        {"team": "search"},
    )
    items = client.get(f"/api/v1/jobs/{job['id']}/items", headers=bearer(keys.alice)).json()["data"]
    assert [i["key"] for i in items] == ["a", "b"]


def test_every_endpoint_the_sdk_names_is_accepted(client: TestClient, keys: Keys) -> None:
    required = get_type_hints(batch_create_params.BatchCreateParams, include_extras=True)["endpoint"]
    endpoints = get_args(get_args(required)[0])
    assert "/v1/chat/completions" in endpoints and len(endpoints) >= 8
    for endpoint in endpoints:
        line = {"custom_id": "x", "method": "POST", "url": endpoint, "body": {"model": "m", "input": "hi"}}
        batch = new_batch(client, keys.alice, jsonl(line), endpoint=endpoint)
        assert get_batch(client, keys.alice, batch["id"])["status"] == "in_progress", endpoint


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input_file_id": None}, "missing_required_parameter", "input_file_id"),
        ({"endpoint": None}, "missing_required_parameter", "endpoint"),
        ({"completion_window": None}, "missing_required_parameter", "completion_window"),
        ({"endpoint": "/v1/audio/speech"}, "invalid_value", "endpoint"),
        ({"completion_window": "48h"}, "invalid_value", "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "invalid_value", "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "invalid_value", "metadata"),
        ({"metadata": {"k": "v" * 513}}, "invalid_value", "metadata.k"),
        ({"metadata": {"k": 1}}, "invalid_value", "metadata.k"),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 10}},
            "invalid_value",
            "output_expires_after.seconds",
        ),
        ({"output_expires_after": {"anchor": "now", "seconds": 3600}}, "invalid_value", "output_expires_after.anchor"),
    ],
)
def test_create_refuses_bad_fields_with_a_400(
    client: TestClient, keys: Keys, body: dict[str, Any], code: str, param: str
) -> None:
    file_id = upload(client, keys.alice, jsonl(request_line("a"))).json()["id"]
    request = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **body}
    request = {k: v for k, v in request.items() if v is not None}
    assert_openai_error(client.post("/v1/batches", json=request, headers=bearer(keys.alice)), 400, code, param)
    assert client.get("/v1/batches", headers=bearer(keys.alice)).json()["data"] == []


def test_create_accepts_the_metadata_limits_exactly(client: TestClient, keys: Keys) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    batch = new_batch(client, keys.alice, jsonl(request_line("a")), metadata=metadata)
    assert get_batch(client, keys.alice, batch["id"])["metadata"] == metadata


def test_create_needs_the_callers_batch_file(client: TestClient, keys: Keys) -> None:
    notes = upload(client, keys.alice, b"n", filename="n.txt", purpose="user_data").json()["id"]
    assert_openai_error(create(client, keys.alice, notes), 400, "invalid_value", "input_file_id")
    bobs = upload(client, keys.bob, jsonl(request_line("a"))).json()["id"]
    assert_openai_error(create(client, keys.alice, bobs), 404, "not_found", "input_file_id")
    assert_openai_error(create(client, keys.alice, "file_nope"), 404, "not_found", "input_file_id")
    assert_openai_error(
        client.post(
            "/v1/batches", content=b"{nope", headers={**bearer(keys.alice), "content-type": "application/json"}
        ),
        400,
        "invalid_json",
        None,
    )


# -- validation after create ----------------------------------------------------------------------------------------


def failed_batch(client: TestClient, keys: Keys, content: bytes, **extra: Any) -> dict[str, Any]:
    batch = get_batch(client, keys.alice, new_batch(client, keys.alice, content, **extra)["id"])
    assert batch["status"] == "failed", batch
    assert isinstance(batch["failed_at"], int) and batch["in_progress_at"] is None
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["errors"]["object"] == "list"
    return batch


def problems(batch: dict[str, Any]) -> list[tuple[str, str | None, int | None]]:
    return [(e["code"], e["param"], e["line"]) for e in batch["errors"]["data"]]


def test_every_bad_line_is_reported_and_nothing_runs(client: TestClient, app: Batchyard, keys: Keys) -> None:
    no_custom_id = request_line("x")
    del no_custom_id["custom_id"]
    no_method_url = request_line("y")
    del no_method_url["method"], no_method_url["url"]
    no_body = request_line("z")
    del no_body["body"]
    content = jsonl(
        request_line("ok-1"),  # 1
        "{not json",  # 2
        no_custom_id,  # 3
        no_method_url,  # 4
        no_body,  # 5
        request_line("e", url="/v1/embeddings"),  # 6
        request_line("ok-1"),  # 7: duplicate custom_id
        request_line("m2", model="m2"),  # 8: a second model
        request_line("s", stream=True),  # 9
        "[1, 2]",  # 10
        {**request_line("p"), "method": "GET"},  # 11
    )
    batch = failed_batch(client, keys, content)
    assert problems(batch) == [
        ("invalid_json_line", None, 2),
        ("missing_required_parameter", "custom_id", 3),
        ("missing_required_parameter", "method", 4),
        ("missing_required_parameter", "url", 4),
        ("missing_required_parameter", "body", 5),
        ("invalid_url", "url", 6),
        ("duplicate_custom_id", "custom_id", 7),
        ("model_mismatch", "body.model", 8),
        ("streaming_unsupported", "body.stream", 9),
        ("invalid_request", None, 10),
        ("invalid_request", "method", 11),
    ]
    assert batch["errors"]["data"][0]["message"] == "This line is not parseable as valid JSON."
    assert batch["errors"]["data"][1]["message"] == "Missing required parameter: 'custom_id'."
    job = app.service.get(job_id_of(batch["id"]) or "")
    assert (job.job.status, job.job.total) == ("failed", 0)  # nothing was executed


def test_too_many_requests_or_bytes_and_an_empty_file(client: TestClient, app: Batchyard, keys: Keys) -> None:
    app.settings.openai_max_batch_requests = 3
    many = failed_batch(client, keys, jsonl(*(request_line(f"r{i}") for i in range(5))))
    assert problems(many) == [("too_many_tasks", None, 4)]
    app.settings.openai_max_batch_requests = 50_000
    app.settings.openai_max_batch_bytes = 100
    big = failed_batch(client, keys, jsonl(request_line("a"), request_line("b")))
    assert problems(big) == [("file_too_large", "input_file_id", None)]
    assert "larger than the 100 maximum" in big["errors"]["data"][0]["message"]
    app.settings.openai_max_batch_bytes = 10_000
    assert problems(failed_batch(client, keys, b"\n\n")) == [("empty_file", None, None)]


# -- reading, listing, cancelling ---------------------------------------------------------------------------------


def test_listing_pages_newest_first_without_repeats(client: TestClient, keys: Keys) -> None:
    file_id = upload(client, keys.alice, jsonl(request_line("a"))).json()["id"]
    made = [create(client, keys.alice, file_id).json()["id"] for _ in range(23)]
    create(client, keys.bob, upload(client, keys.bob, jsonl(request_line("a"))).json()["id"])
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        query = {"limit": 10, **({"after": after} if after else {})}
        page = client.get("/v1/batches", params=query, headers=bearer(keys.alice)).json()
        assert page["object"] == "list" and list(page) == ["object", "data", "first_id", "last_id", "has_more"]
        seen += [b["id"] for b in page["data"]]
        pages += 1
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == made[::-1] and pages == 3
    default = client.get("/v1/batches", headers=bearer(keys.alice)).json()
    assert len(default["data"]) == 20 and default["has_more"] is True
    assert_openai_error(client.get("/v1/batches?limit=101", headers=bearer(keys.alice)), 400, "invalid_value", "limit")


def test_another_owners_batches_and_files_are_missing(client: TestClient, keys: Keys) -> None:
    batch = new_batch(client, keys.alice, jsonl(request_line("a")))
    file_id = batch["input_file_id"]
    for method, url in [
        ("GET", f"/v1/batches/{batch['id']}"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        assert_openai_error(
            client.request(method, url, headers=bearer(keys.bob)),
            404,
            "not_found",
            "file_id" if "files" in url else "batch_id",
        )
    assert client.get("/v1/batches", headers=bearer(keys.bob)).json()["data"] == []
    assert client.get("/v1/files", headers=bearer(keys.bob)).json()["data"] == []
    assert client.get(f"/v1/batches/{batch['id']}", headers=bearer(keys.root)).status_code == 200  # the admin
    assert client.post(f"/v1/batches/{batch['id']}/cancel", headers=bearer(keys.vera)).status_code == 403
    no_key = client.get("/v1/batches")
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    assert_openai_error(client.get("/v1/batches/job_123", headers=bearer(keys.alice)), 404, "not_found", "batch_id")


def test_cancel_writes_batch_cancelled_lines(client: TestClient, app: Batchyard, keys: Keys) -> None:
    batch = new_batch(client, keys.alice, jsonl(request_line("a"), request_line("b")))
    cancelled = client.post(f"/v1/batches/{batch['id']}/cancel", headers=bearer(keys.alice)).json()
    assert cancelled["status"] == "cancelling" and isinstance(cancelled["cancelling_at"], int)
    Maintenance(app.store, app.storage, app.settings).run_once()  # writes the files
    done = get_batch(client, keys.alice, batch["id"])
    assert done["status"] == "cancelled" and isinstance(done["cancelled_at"], int)
    assert done["output_file_id"] is None and done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    lines = read_lines(client, keys.alice, done["error_file_id"])
    assert sorted(line["custom_id"] for line in lines) == ["a", "b"]
    assert all(line["response"] is None and line["error"]["code"] == "batch_cancelled" for line in lines)
    # again: the batch as it is; a finished batch cannot be cancelled
    assert client.post(f"/v1/batches/{batch['id']}/cancel", headers=bearer(keys.alice)).json()["status"] == "cancelled"
    error_file = client.get(f"/v1/files/{done['error_file_id']}", headers=bearer(keys.alice)).json()
    assert (error_file["purpose"], error_file["filename"]) == ("batch_output", f"{batch['id']}_error.jsonl")


def read_lines(client: TestClient, key: str, file_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/files/{file_id}/content", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_expiry_writes_batch_expired_lines_and_keeps_what_finished(
    client: TestClient, app: Batchyard, keys: Keys
) -> None:
    calls: list[str] = []

    async def openai(item: dict[str, Any], ctx: Any) -> dict[str, Any]:  # answers the first request, the other hangs
        calls.append(item["custom_id"])
        if item["custom_id"] != "first":
            await asyncio.sleep(60)  # a slow time passing is what this tests: the window closes meanwhile
        ctx.add_usage(input_tokens=3, output_tokens=2, total_tokens=5)
        return {"status_code": 200, "request_id": "req_1", "body": {"object": "chat.completion", "n": 1}}

    app.registry.register("openai", openai, max_attempts=5)
    app.settings.openai_window_seconds = 4  # time enough for the first request, even on a busy machine
    batch = new_batch(client, keys.alice, jsonl(request_line("first"), request_line("second")))
    worker = app.job(job_id_of(batch["id"]) or "")
    view = worker.wait(timeout=30)  # expiry ends it: maintenance runs in the waiting worker
    assert view.job.status == "expired"
    done = get_batch(client, keys.alice, batch["id"])
    assert done["status"] == "expired" and isinstance(done["expired_at"], int)
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert done["usage"]["total_tokens"] == 5 and done["usage"]["input_tokens"] == 3
    output = read_lines(client, keys.alice, done["output_file_id"])
    assert [(o["custom_id"], o["response"]["status_code"], o["response"]["body"]["n"]) for o in output] == [
        ("first", 200, 1)
    ]
    assert output[0]["error"] is None and output[0]["id"].startswith("batch_req_")
    errors = read_lines(client, keys.alice, done["error_file_id"])
    assert [(e["custom_id"], e["response"], e["error"]["code"]) for e in errors] == [("second", None, "batch_expired")]
    too_late = client.post(f"/v1/batches/{batch['id']}/cancel", headers=bearer(keys.alice))
    assert (
        "Cannot cancel a batch that is expired" in assert_openai_error(too_late, 409, "illegal_transition")["message"]
    )


def test_limits_answer_in_openais_shape(client: TestClient, app: Batchyard, keys: Keys) -> None:
    repeated = client.get("/v1/batches?limit=1&limit=2", headers=bearer(keys.alice))
    assert_openai_error(repeated, 400, "invalid_value", "limit")
    app.settings.max_request_bytes = 1024
    with TestClient(create_app(batchyard=app)) as small:  # the body limit is taken when the app is made
        big = small.post("/v1/batches", json={"metadata": {"k": "v" * 2000}}, headers=bearer(keys.alice))
    assert_openai_error(big, 413, "too_large", None)
    unknown = client.post("/v1/chat/completions", json={}, headers=bearer(keys.alice))
    assert_openai_error(unknown, 404, "not_found", None)


def test_maintenance_validates_what_the_request_did_not(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """A server that died between create and validation leaves the batch validating: any process's maintenance
    checks it (once: a claimed batch is not checked twice), and a batch paused meanwhile stays paused."""
    file_id = upload(client, keys.alice, jsonl(request_line("a"), request_line("b"))).json()["id"]
    alice = Principal("alice", Role.MEMBER)
    batches = app.openai_batches
    first = batches.create(alice, input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    second = batches.create(alice, input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    assert (first.status, second.status) == ("validating", "validating")
    app.service.pause(job_id_of(second.id) or "", alice)
    assert batches.get(second.id, alice).status == "validating"
    report = Maintenance(app.store, app.storage, app.settings).run_once()
    assert report.batches_validated == 2
    assert batches.get(first.id, alice).status == "in_progress"
    paused = app.service.get(job_id_of(second.id) or "", alice)
    assert (paused.job.status, paused.job.total) == ("paused", 2)
    assert batches.validate(job_id_of(first.id) or "") is False  # filled already: nothing happens twice


def test_output_files_expire_as_the_batch_asked(client: TestClient, app: Batchyard, keys: Keys) -> None:
    expiry = {"anchor": "created_at", "seconds": 7200}
    batch = new_batch(
        client, keys.alice, jsonl(request_line("a")), output_expires_after=expiry, metadata={"description": "nightly"}
    )
    job_id = job_id_of(batch["id"]) or ""
    assert app.service.get(job_id).job.description == "nightly"  # the native job says what the batch is
    client.post(f"/v1/batches/{batch['id']}/cancel", headers=bearer(keys.alice))
    maintenance = Maintenance(app.store, app.storage, app.settings)
    maintenance.run_once()
    error_file = client.get(
        f"/v1/files/{get_batch(client, keys.alice, batch['id'])['error_file_id']}", headers=bearer(keys.alice)
    ).json()
    assert error_file["expires_at"] - error_file["created_at"] == 7200
    # past its expiry a file is deleted, bytes and all
    app.store.uploads.add_file("file_" + "0" * 24, "alice", "old.jsonl", "batch", 1, "x" * 64, expires_at=1.0)
    app.storage.write_bytes("uploads/file_" + "0" * 24, b"x")
    assert maintenance.openai.delete_expired_files() == 1
    assert client.get("/v1/files/file_" + "0" * 24, headers=bearer(keys.alice)).status_code == 404
    assert not app.storage.exists("uploads/file_" + "0" * 24)
