"""The official ``openai`` SDK, strict response validation on, against a real ``batchyard serve`` subprocess:
files, batch creation and validation after create, listing 150 batches with auto-paging, another owner's ids.

Running batches against ``batchyard mock-upstream`` is tests/e2e/test_openai_batches_run.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import openai
import pytest
from openai import OpenAI

from ..waits import wait_until
from .test_serve import ServerProcess, free_port, running_server

TERMINAL = {"completed", "failed", "expired", "cancelled"}
CHAT: Final = "/v1/chat/completions"


def sdk(server: ServerProcess, key: str, **options: Any) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=key, _strict_response_validation=True, **options)


def chat_line(custom_id: str, model: str = "mock-chat", url: str = CHAT, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": model, "messages": [{"role": "user", "content": f"hello {custom_id}"}], **body},
    }


def jsonl(lines: list[Any]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def wait_terminal(client: OpenAI, batch_id: str, timeout: float = 60) -> Any:
    return wait_until(
        lambda: (b := client.batches.retrieve(batch_id)).status in TERMINAL and b,
        what=f"batch {batch_id} to end",
        timeout=timeout,
        interval=0.1,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No upstream: batches are created, validated, listed and cancelled, never run."""
    root = tmp_path_factory.mktemp("openai-sdk")
    env = {"BATCHYARD_OPENAI_MAX_BATCH_REQUESTS": "50", "BATCHYARD_OPENAI_MAX_BATCH_BYTES": "200000"}
    with running_server(root / "data", root, "--port", str(free_port()), env=env) as process:
        yield process


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> OpenAI:
    return sdk(server, server.create_key("alice"))


def test_files_round_trip(alice: OpenAI, tmp_path: Path) -> None:
    content = jsonl([chat_line(f"r{i}") for i in range(3)])
    path = tmp_path / "requests.jsonl"
    path.write_bytes(content)
    with path.open("rb") as handle:
        uploaded = alice.files.create(file=handle, purpose="batch")
    assert isinstance(uploaded, openai.types.FileObject)
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose, uploaded.status) == (
        "requests.jsonl",
        len(content),
        "batch",
        "processed",
    )
    assert uploaded.expires_at == uploaded.created_at + 30 * 86400
    assert alice.files.wait_for_processing(uploaded.id).status == "processed"
    assert alice.files.retrieve(uploaded.id) == uploaded
    assert alice.files.content(uploaded.id).content == content
    other = alice.files.create(file=("notes.txt", b"some notes"), purpose="user_data")
    assert uploaded.id in [f.id for f in alice.files.list(purpose="batch")]
    assert other.id not in [f.id for f in alice.files.list(purpose="batch")]
    listed = [f.id for f in alice.files.list(limit=1, order="asc")]  # auto-paging one by one
    assert listed.index(uploaded.id) < listed.index(other.id) and len(listed) == len(set(listed))

    deleted = alice.files.delete(other.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (other.id, True, "file")
    with pytest.raises(openai.NotFoundError) as missing:
        alice.files.retrieve(other.id)
    assert missing.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        alice.files.create(file=("requests.csv", content), purpose="batch")
    assert bad.value.message.endswith("Invalid file format for Batch API. Must be .jsonl")


def test_create_then_validation_fails_the_batch_with_every_bad_line(alice: OpenAI) -> None:
    no_body = chat_line("c")
    del no_body["body"]
    lines: list[Any] = [
        chat_line("a"),
        "{broken",
        chat_line("a"),
        chat_line("b", url="/v1/embeddings"),
        no_body,
        chat_line("d", model="other-model"),
        chat_line("e", stream=True),
    ]
    file = alice.files.create(file=("bad.jsonl", jsonl(lines)), purpose="batch")
    batch = alice.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    assert batch.status in ("validating", "failed") and batch.request_counts is not None
    done = wait_terminal(alice, batch.id)
    assert done.status == "failed" and done.failed_at is not None and done.errors is not None
    assert [(e.code, e.line, e.param) for e in done.errors.data] == [
        ("invalid_json_line", 2, None),
        ("duplicate_custom_id", 3, "custom_id"),
        ("invalid_url", 4, "url"),
        ("missing_required_parameter", 5, "body"),
        ("model_mismatch", 6, "body.model"),
        ("streaming_unsupported", 7, "body.stream"),
    ]
    assert done.output_file_id is None and done.error_file_id is None


def test_too_many_requests_or_bytes_fail_the_batch(alice: OpenAI) -> None:
    many = alice.files.create(file=("many.jsonl", jsonl([chat_line(f"r{i}") for i in range(51)])), purpose="batch")
    batch = alice.batches.create(input_file_id=many.id, endpoint=CHAT, completion_window="24h")
    done = wait_terminal(alice, batch.id)
    assert done.errors is not None
    assert [(e.code, e.line) for e in done.errors.data] == [("too_many_tasks", 51)]
    big = jsonl([chat_line(f"r{i}", padding="x" * 50_000) for i in range(5)])
    large = alice.files.create(file=("large.jsonl", big), purpose="batch")
    batch = alice.batches.create(input_file_id=large.id, endpoint=CHAT, completion_window="24h")
    done = wait_terminal(alice, batch.id)
    assert done.errors is not None and [e.code for e in done.errors.data] == ["file_too_large"]


def test_create_refuses_bad_requests_with_400s(alice: OpenAI) -> None:
    file = alice.files.create(file=("ok.jsonl", jsonl([chat_line("a")])), purpose="batch")
    cases: list[dict[str, Any]] = [
        {"endpoint": "/v1/nope"},
        {"completion_window": "1h"},
        {"metadata": {str(i): "v" for i in range(17)}},
        {"metadata": {"k": "v" * 513}},
        {"input_file_id": "file_000000000000000000000000"},
    ]
    for case in cases:
        args: dict[str, Any] = {"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", **case}
        expected = openai.NotFoundError if "input_file_id" in case else openai.BadRequestError
        with pytest.raises(expected) as refused:
            alice.batches.create(**args)
        assert refused.value.body["type"] == "invalid_request_error", case  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as missing:
        alice.post("/batches", body={"endpoint": CHAT, "completion_window": "24h"}, cast_to=openai.types.Batch)
    assert (missing.value.code, missing.value.param) == ("missing_required_parameter", "input_file_id")


def test_listing_150_batches_auto_pages_newest_first(server: ServerProcess) -> None:
    client = sdk(server, server.create_key("lister"))
    file = client.files.create(file=("one.jsonl", jsonl([chat_line("only")])), purpose="batch")
    created = [
        client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h", metadata={"n": str(n)}).id
        for n in range(150)
    ]
    listed = [b.id for b in client.batches.list(limit=7)]
    assert listed == created[::-1]  # all of them, newest first, none twice: auto-paging ended by itself
    assert [b.id for b in client.batches.list()] == created[::-1]  # default pages of 20
    first = client.batches.list(limit=100)
    assert len(first.data) == 100 and first.has_more and first.data[-1].id == created[50]
    assert first.model_extra is not None and first.model_extra["last_id"] == created[50]
    second = client.batches.list(limit=100, after=first.data[-1].id)
    assert [b.id for b in second.data] == created[:50][::-1] and not second.has_more
    retrieved = client.batches.retrieve(created[0])
    assert retrieved.metadata == {"n": "0"} and retrieved.endpoint == CHAT and retrieved.input_file_id == file.id


def test_another_owners_batches_and_files_are_404s(server: ServerProcess, alice: OpenAI) -> None:
    file = alice.files.create(file=("mine.jsonl", jsonl([chat_line("a")])), purpose="batch")
    batch = alice.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    bob = sdk(server, server.create_key("bob"), max_retries=0)
    for call in (
        lambda: bob.batches.retrieve(batch.id),
        lambda: bob.batches.cancel(batch.id),
        lambda: bob.files.retrieve(file.id),
        lambda: bob.files.content(file.id),
        lambda: bob.files.delete(file.id),
        lambda: bob.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert batch.id not in [b.id for b in bob.batches.list()]
    assert file.id not in [f.id for f in bob.files.list()]
    assert alice.batches.retrieve(batch.id).id == batch.id  # still there for its owner
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "by_not-a-key", max_retries=0).batches.list()


def test_cancel_before_it_runs(alice: OpenAI) -> None:
    file = alice.files.create(file=("c.jsonl", jsonl([chat_line(f"r{i}") for i in range(3)])), purpose="batch")
    batch = alice.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    wait_until(lambda: alice.batches.retrieve(batch.id).status == "in_progress", what="validation")
    cancelling = alice.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at is not None
    done = wait_terminal(alice, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None and done.output_file_id is None
    assert done.request_counts is not None and done.request_counts.failed == 3
    lines = [json.loads(line) for line in alice.files.content(done.error_file_id or "").text.splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    assert {line["error"]["code"] for line in lines} == {"batch_cancelled"}
    assert time.time() - done.created_at < 120
