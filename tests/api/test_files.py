"""File uploads over HTTP: streamed to storage with a size limit (413 and nothing kept past it), listed per owner,
downloaded byte for byte, deleted; and the service's hand-over of an upload to job creation."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.api import create_app
from batchyard.api.limits import MULTIPART_SLACK_BYTES
from batchyard.data.ingest import detect_format
from batchyard.errors import FileTooLarge, Forbidden, NotFound
from batchyard.services.auth import Principal, Role
from batchyard.services.files import FileService, clean_filename

from .conftest import Keys, bearer

CONTENT = "".join(f'{{"key": "line-{n}", "n": {n}}}\n' for n in range(200)).encode()
ALICE = Principal("alice", Role.MEMBER)


def upload(client: TestClient, key: str, content: bytes = CONTENT, filename: str = "items.jsonl", **fields: str) -> Any:
    return client.post(
        "/api/v1/files", files={"file": (filename, content, "application/jsonl")}, data=fields, headers=bearer(key)
    )


def uploads_dir(app: Batchyard) -> Path:
    return app.storage.root / "uploads"


def stored_files(app: Batchyard) -> list[str]:
    """Everything under uploads/, temporary files included."""
    folder = uploads_dir(app)
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_upload_then_read_back_byte_for_byte(client: TestClient, app: Batchyard, keys: Keys) -> None:
    response = upload(client, keys.alice, filename="données de mars.jsonl", purpose="batch")
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["id"].startswith("file_") and len(meta["id"]) == 29
    assert (meta["owner"], meta["filename"], meta["purpose"], meta["object"]) == (
        "alice",
        "données de mars.jsonl",
        "batch",
        "file",
    )
    assert meta["bytes"] == len(CONTENT) and meta["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert stored_files(app) == [meta["id"]]

    assert client.get(f"/api/v1/files/{meta['id']}", headers=bearer(keys.alice)).json() == meta
    download = client.get(f"/api/v1/files/{meta['id']}/content", headers=bearer(keys.alice))
    assert download.status_code == 200 and download.content == CONTENT
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"donn_es de mars.jsonl\"; filename*=UTF-8''donn%C3%A9es%20de%20mars.jsonl"
    )


def test_purpose_defaults_to_batch_and_is_checked(client: TestClient, app: Batchyard, keys: Keys) -> None:
    assert upload(client, keys.alice, note="other fields are ignored").json()["purpose"] == "batch"
    assert upload(client, keys.alice, purpose="user_data").json()["purpose"] == "user_data"
    bad = upload(client, keys.alice, purpose="homework")
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "purpose" and "'batch'" in bad.json()["error"]["message"]
    assert len(stored_files(app)) == 2 and len(app.store.uploads.list_files()) == 2  # the refused one left nothing


def test_malformed_uploads_are_client_errors(client: TestClient, app: Batchyard, keys: Keys) -> None:
    no_file = client.post("/api/v1/files", files={"purpose": (None, "batch")}, headers=bearer(keys.alice))
    assert no_file.status_code == 422 and no_file.json()["error"]["param"] == "file"
    long_purpose = client.post(
        "/api/v1/files", files={"file": ("a.jsonl", b"{}\n"), "purpose": (None, "x" * 2000)}, headers=bearer(keys.alice)
    )
    assert long_purpose.status_code == 422 and long_purpose.json()["error"]["param"] == "purpose"
    as_json = client.post("/api/v1/files", json={"file": "x"}, headers=bearer(keys.alice))
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["message"]
    truncated = client.post(
        "/api/v1/files",
        content=b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhalf a fi',
        headers={**bearer(keys.alice), "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert truncated.status_code == 400 and "closing boundary" in truncated.json()["error"]["message"]
    assert stored_files(app) == [] and app.store.uploads.list_files() == []


@pytest.mark.parametrize("size", [5_000, 200_000])  # past the limit while streaming; refused by its length
def test_over_the_limit_is_413_and_nothing_is_kept(client: TestClient, app: Batchyard, keys: Keys, size: int) -> None:
    app.settings.max_upload_bytes = 1000
    response = upload(client, keys.alice, content=b"x" * size)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "file_too_large" and "1000 bytes" in error["message"]
    assert stored_files(app) == [] and app.store.uploads.list_files() == []
    # exactly at the limit is fine
    assert upload(client, keys.alice, content=b"x" * 1000).status_code == 201


def test_chunked_upload_over_the_limit(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """No Content-Length: the limit is found by counting the bytes as they arrive."""
    app.settings.max_upload_bytes = 1000
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for _ in range(10):
            yield b"y" * 500
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/v1/files",
        content=body(),
        headers={**bearer(keys.alice), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert stored_files(app) == [] and app.store.uploads.list_files() == []


def test_one_chunk_past_both_limits_gets_the_same_answer(app: Batchyard, keys: Keys) -> None:
    """A server may hand the route one chunk that jumps past the route's limit and the middleware's backstop at
    once (uvicorn joins what arrived while the route was busy): the answer is the same precise 413 either way.
    Driven through the ASGI interface, as a server would, with the whole body in one message."""
    app.settings.max_upload_bytes = 1000
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'.encode()
    body = head + b"z" * (1000 + 3 * MULTIPART_SLACK_BYTES) + f"\r\n--{boundary}--\r\n".encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/files",
        "raw_path": b"/api/v1/files",
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "headers": [  # no Content-Length: nothing is refused before the bytes arrive
            (b"authorization", f"Bearer {keys.alice}".encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"transfer-encoding", b"chunked"),
        ],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with TestClient(create_app(batchyard=app)) as client:  # the middleware takes its limit when the app is made
        client.portal.call(client.app, scope, receive, send)  # type: ignore[union-attr,call-arg,arg-type]

    assert sent[0]["status"] == 413
    error = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert error["code"] == "file_too_large" and error["param"] == "file"
    assert "larger than the upload limit" in error["message"] and "(1000 bytes)" in error["message"]
    assert stored_files(app) == [] and app.store.uploads.list_files() == []


def test_list_is_owner_scoped_and_paged_newest_first(client: TestClient, keys: Keys) -> None:
    mine = [upload(client, keys.alice, filename=f"f{n}.jsonl").json()["id"] for n in range(5)]
    bobs = upload(client, keys.bob).json()["id"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/files", params=params, headers=bearer(keys.alice)).json()
        assert len(page["data"]) <= 2
        seen += [f["id"] for f in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == mine[::-1]
    everyone = client.get("/api/v1/files", params={"limit": 500}, headers=bearer(keys.root)).json()["data"]
    assert {f["id"] for f in everyone} == {*mine, bobs}
    assert client.get("/api/v1/files", params={"purpose": "vision"}, headers=bearer(keys.alice)).json()["data"] == []
    bad = client.get("/api/v1/files", params={"cursor": "nope"}, headers=bearer(keys.alice))
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "cursor"


def test_delete_removes_row_and_bytes(client: TestClient, app: Batchyard, keys: Keys) -> None:
    file_id = upload(client, keys.alice).json()["id"]
    assert client.delete(f"/api/v1/files/{file_id}", headers=bearer(keys.alice)).status_code == 204
    assert stored_files(app) == []
    for method, url in (
        ("GET", f"/api/v1/files/{file_id}"),
        ("GET", f"/api/v1/files/{file_id}/content"),
        ("DELETE", f"/api/v1/files/{file_id}"),
    ):
        assert client.request(method, url, headers=bearer(keys.alice)).status_code == 404


def test_another_owners_file_is_missing_and_viewers_only_read(client: TestClient, app: Batchyard, keys: Keys) -> None:
    file_id = upload(client, keys.alice).json()["id"]
    unknown = "file_" + "0" * 24
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        as_bob = client.request(method, f"/api/v1/files/{file_id}{suffix}", headers=bearer(keys.bob))
        wrong_id = client.request(method, f"/api/v1/files/{unknown}{suffix}", headers=bearer(keys.alice))
        assert as_bob.status_code == wrong_id.status_code == 404
        assert as_bob.json()["error"]["message"] == f"no file {file_id!r}"
        assert client.request(method, f"/api/v1/files/{file_id}{suffix}").status_code == 401
    assert client.get("/api/v1/files/not-an-id", headers=bearer(keys.alice)).status_code == 404

    assert client.get(f"/api/v1/files/{file_id}", headers=bearer(keys.vera)).status_code == 200
    assert client.get(f"/api/v1/files/{file_id}/content", headers=bearer(keys.vera)).content == CONTENT
    refused = upload(client, keys.vera)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.delete(f"/api/v1/files/{file_id}", headers=bearer(keys.vera)).status_code == 403
    assert client.get(f"/api/v1/files/{file_id}", headers=bearer(keys.root)).status_code == 200
    assert client.post("/api/v1/files", files={"file": ("a", b"x")}).status_code == 401
    assert stored_files(app) == [file_id]


def test_a_job_from_an_uploaded_file(app: Batchyard) -> None:
    """What job creation does with a file id: open it owner-checked, then submit it like a local file."""
    files = FileService(app.store, app.storage, app.settings)
    record = files.upload(ALICE, io.BytesIO(CONTENT), filename="march.jsonl")
    path, filename = files.open_for_job(record.id, ALICE)
    assert path.read_bytes() == CONTENT and filename == "march.jsonl"
    with pytest.raises(NotFound):
        files.open_for_job(record.id, Principal("bob", Role.MEMBER))
    with pytest.raises(Forbidden):
        files.open_for_job(record.id, Principal("alice", Role.VIEWER))
    job = app.service.submit("echo", path, format=detect_format(filename), source_name=filename, owner="alice")
    assert job.total == 200 and job.source == "march.jsonl"


def test_service_upload_limit_and_names(app: Batchyard) -> None:
    app.settings.max_upload_bytes = 10
    files = FileService(app.store, app.storage, app.settings)
    with pytest.raises(FileTooLarge):
        files.upload(ALICE, io.BytesIO(b"x" * 11))
    assert stored_files(app) == [] and app.store.uploads.list_files() == []
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\me\\in.csv") == "in.csv"
    assert clean_filename("a\x00b\nc.jsonl") == "abc.jsonl"
    assert clean_filename("") == clean_filename("..") == "upload"
    long = clean_filename("x" * 400 + ".jsonl")
    assert len(long) == 255 and long.endswith(".jsonl")
