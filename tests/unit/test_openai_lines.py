"""The lines of an OpenAI batch's output and error files, from stored items, and the input checks of single
lines: pure functions, no database."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from batchyard.data.openai_input import BatchInputReader, BatchInputRejected
from batchyard.data.openai_output import error_line, output_line, request_id


def row(status: str, result: Any = None, error: Any = None, seq: int = 3, key: str = "req-é") -> tuple[Any, ...]:
    return (
        seq,
        key,
        status,
        1,
        None if result is None else json.dumps(result),
        None if error is None else json.dumps(error),
        None,
        None,
        None,
    )


def test_a_success_line_carries_the_stored_response() -> None:
    response = {"status_code": 200, "request_id": "req_9", "body": {"object": "chat.completion", "id": "c1"}}
    line = json.loads(output_line("job_0190abcd", row("succeeded", result=response)))
    assert line == {"id": request_id("job_0190abcd", 3), "custom_id": "req-é", "response": response, "error": None}
    assert line["id"] == "batch_req_0190abcd00000003"


def test_an_upstream_http_error_keeps_its_status_and_body() -> None:
    body = {"error": {"message": "context too long", "type": "invalid_request_error", "param": None, "code": "x"}}
    stored = {
        "code": "http_400",
        "message": "upstream answered 400",
        "attempt": 1,
        "detail": {"status_code": 400, "request_id": "req_7", "body": body},
    }
    line = json.loads(error_line("job_1", row("failed", error=stored), "batch_cancelled"))
    assert line["response"] == {"status_code": 400, "request_id": "req_7", "body": body}
    assert line["error"] is None and line["custom_id"] == "req-é"


def test_a_failure_without_an_http_answer_has_an_error_and_no_response() -> None:
    stored = {"code": "upstream_unreachable", "message": "connection refused", "attempt": 3}
    line = json.loads(error_line("job_1", row("failed", error=stored), "batch_cancelled"))
    assert line["response"] is None
    assert line["error"] == {"code": "upstream_unreachable", "message": "connection refused"}


@pytest.mark.parametrize("code", ["batch_cancelled", "batch_expired"])
def test_unexecuted_requests_say_why(code: str) -> None:
    line = json.loads(error_line("job_1", row("cancelled"), code))
    assert line["response"] is None and line["error"]["code"] == code and line["error"]["message"]


def read(text: bytes, **options: Any) -> tuple[list[Any], BatchInputReader]:
    reader = BatchInputReader(
        io.BytesIO(text),
        endpoint=options.pop("endpoint", "/v1/embeddings"),
        max_requests=options.pop("max_requests", 100),
        max_line_bytes=options.pop("max_line_bytes", 1000),
    )
    items = [item for chunk in reader.chunks(2) for item in chunk]
    return items, reader


def test_good_lines_become_items_keyed_by_custom_id_with_the_line_as_payload() -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "emb", "input": "x"}}
        for i in range(5)
    ]
    text = "\ufeff".encode() + b"\n".join(json.dumps(line).encode() for line in lines) + b"\n\n"
    items, reader = read(text)
    assert [(i.seq, i.line, i.key) for i in items] == [(n, n + 1, f"e{n}") for n in range(5)]
    assert [json.loads(i.payload) for i in items] == lines and reader.model == "emb"


def test_a_line_over_the_limit_is_reported_and_the_next_read() -> None:
    long_line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"x": "y" * 2000}})
    with pytest.raises(BatchInputRejected) as rejected:
        read(long_line.encode() + b"\n{bad\n")
    assert [(p.code, p.line) for p in rejected.value.problems] == [("invalid_request", 1), ("invalid_json_line", 2)]


def test_embedding_inputs_are_summed_over_the_batch() -> None:
    def line(n: int, given: Any) -> bytes:
        body = {"model": "emb", "input": given}
        return json.dumps({"custom_id": f"e{n}", "method": "POST", "url": "/v1/embeddings", "body": body}).encode()

    lines = [line(0, ["a"] * 30_000), line(1, [1, 2, 3]), line(2, "one"), line(3, ["b"] * 19_998), line(4, ["c", "d"])]
    with pytest.raises(BatchInputRejected) as rejected:
        read(b"\n".join(lines), max_line_bytes=1_000_000)
    assert [(p.code, p.param, p.line) for p in rejected.value.problems] == [("too_many_tasks", "body.input", 5)]
    items, reader = read(b"\n".join(lines[:4]), max_line_bytes=1_000_000)
    assert len(items) == 4 and reader.embedding_inputs == 50_000


def test_the_problem_list_is_capped_but_every_problem_counted() -> None:
    text = b"{nope\n" * 1500
    with pytest.raises(BatchInputRejected) as rejected:
        read(text)
    assert rejected.value.total == 1500 and len(rejected.value.problems) == 1000
    assert rejected.value.problems[-1].line == 1000
