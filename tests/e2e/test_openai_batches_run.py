"""OpenAI batches that run: the official ``openai`` SDK (strict validation) against a real ``batchyard serve``
whose ``openai`` handler sends every request to a real ``batchyard mock-upstream`` subprocess.

Upload, create, poll, download the output and error files and join them on ``custom_id``; upstream 4xx, 429 with
Retry-After and 500s as the error file shows them; cancel mid-run; expiry; 2,000-request batches of chat
completions and of embeddings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import pytest
from openai import OpenAI

from ..upstream import MockUpstreamProcess, start_mock_upstream
from ..waits import wait_until
from .test_openai_sdk import TERMINAL, jsonl, sdk, wait_terminal
from .test_serve import ServerProcess, free_port, running_server

CHAT: Final = "/v1/chat/completions"
EMBEDDINGS: Final = "/v1/embeddings"
# Few retries and short backoffs, so a request that keeps failing gives up within seconds.
FAST_RETRIES = {
    "BATCHYARD_UPSTREAM_MAX_RETRIES": "2",
    "BATCHYARD_MAX_ATTEMPTS": "2",
    "BATCHYARD_BACKOFF_BASE_SECONDS": "0.1",
    "BATCHYARD_BACKOFF_MAX_SECONDS": "0.2",
}


def chat(custom_id: str, mock: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "mock-chat", "messages": [{"role": "user", "content": f"hello {custom_id}"}]}
    if mock is not None:
        body["mock"] = {"key": custom_id, **mock}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def embedding(custom_id: str) -> dict[str, Any]:
    body = {"model": "mock-embed", "input": f"text number {custom_id}"}
    return {"custom_id": custom_id, "method": "POST", "url": EMBEDDINGS, "body": body}


def lines_of(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def run_batch(
    client: OpenAI,
    lines: list[dict[str, Any]],
    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"] = CHAT,
    timeout: float = 120,
) -> Any:
    file = client.files.create(file=("requests.jsonl", jsonl(list(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h")
    assert batch.status == "validating" and batch.input_file_id == file.id
    return wait_terminal(client, batch.id, timeout=timeout)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with start_mock_upstream("--latency-ms", "5") as process:
        yield process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstreamProcess) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("openai-run")
    args = ("--port", str(free_port()), "--upstream", mock.url)
    with running_server(root / "data", root, *args, env=FAST_RETRIES) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return sdk(server, server.create_key("alice"))


def test_upload_create_poll_download_and_join(client: OpenAI, mock: MockUpstreamProcess) -> None:
    lines = [
        *(chat(f"ok-{i}") for i in range(20)),
        chat("bad-request", {"status": 400}),  # final at once: the upstream's answer goes to the error file
        chat("flaky", {"fail": [429, 500], "retry_after": 1}),  # retried inside the attempt, then answered
        chat("always-500", {"status": 500}),  # retries run out: the error file has the last 500
    ]
    done = run_batch(client, lines)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (23, 21, 2)
    assert done.model == "mock-chat" and done.in_progress_at is not None and done.finalizing_at is not None
    assert done.completed_at is not None and done.completed_at >= done.created_at

    output = {line["custom_id"]: line for line in lines_of(client, done.output_file_id)}
    errors = {line["custom_id"]: line for line in lines_of(client, done.error_file_id)}
    assert set(output) == {f"ok-{i}" for i in range(20)} | {"flaky"}
    assert set(errors) == {"bad-request", "always-500"}
    for custom_id, line in output.items():  # joined on custom_id: each answer is its own request's
        assert line["error"] is None and line["id"].startswith("batch_req_")
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        assert response["body"]["object"] == "chat.completion"
        assert f"hello {custom_id}" in json.dumps(response["body"]) or response["body"]["choices"]
    assert errors["bad-request"]["error"] is None
    assert errors["bad-request"]["response"]["status_code"] == 400
    assert errors["bad-request"]["response"]["body"]["error"]["code"] == "mock_error"
    assert errors["always-500"]["response"]["status_code"] == 500
    assert errors["always-500"]["response"]["body"]["error"]["type"] == "server_error"

    usage = done.usage
    assert usage is not None
    assert usage.total_tokens == sum(o["response"]["body"]["usage"]["total_tokens"] for o in output.values())
    assert usage.input_tokens + usage.output_tokens == usage.total_tokens > 0
    # 429 with Retry-After: 1 was honoured: the retry came a second after the 429
    arrivals = mock.stats()["arrivals"]["flaky"]
    assert len(arrivals) == 3 and arrivals[1] - arrivals[0] >= 0.95
    assert mock.stats()["by_key"]["bad-request"] == 1  # a 400 is never retried


def test_a_batch_whose_requests_all_fail_is_completed_without_an_output_file(client: OpenAI) -> None:
    done = run_batch(client, [chat(f"no-{i}", {"status": 422}) for i in range(3)])
    assert done.status == "completed" and done.output_file_id is None and done.error_file_id is not None
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 0, 3)
    assert {line["response"]["status_code"] for line in lines_of(client, done.error_file_id)} == {422}


def test_a_failure_without_an_http_answer(tmp_path: Path) -> None:
    """An upstream that is not there: no HTTP answer, so the error line has ``response: null`` and an error."""
    args = ("--port", str(free_port()), "--upstream", f"http://127.0.0.1:{free_port()}/v1")
    with running_server(tmp_path / "data", tmp_path, *args, env=FAST_RETRIES) as server:
        client = sdk(server, server.create_key("alice"))
        done = run_batch(client, [chat("nowhere")])
        assert done.status == "completed" and done.output_file_id is None
        [line] = lines_of(client, done.error_file_id)
        assert line["custom_id"] == "nowhere" and line["response"] is None
        assert line["error"]["code"] == "upstream_unreachable" and line["error"]["message"]


def test_cancel_mid_run_keeps_what_finished(client: OpenAI) -> None:
    lines = [chat(f"fast-{i}") for i in range(5)] + [chat(f"slow-{i}", {"latency_ms": 30_000}) for i in range(50)]
    file = client.files.create(file=("mixed.jsonl", jsonl(list(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint=CHAT, completion_window="24h")
    wait_until(
        lambda: (b := client.batches.retrieve(batch.id)).request_counts is not None and b.request_counts.completed >= 5,
        what="the fast requests to finish",
        timeout=60,
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done = wait_terminal(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    output = lines_of(client, done.output_file_id)
    errors = lines_of(client, done.error_file_id)
    assert sorted(line["custom_id"] for line in output) == [f"fast-{i}" for i in range(5)]
    assert sorted(line["custom_id"] for line in errors) == sorted(f"slow-{i}" for i in range(50))
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert done.request_counts is not None and (done.request_counts.completed, done.request_counts.failed) == (5, 50)


def test_expiry_writes_batch_expired_lines(tmp_path: Path, mock: MockUpstreamProcess) -> None:
    env = {**FAST_RETRIES, "BATCHYARD_OPENAI_WINDOW_SECONDS": "4"}
    args = ("--port", str(free_port()), "--upstream", mock.url)
    with running_server(tmp_path / "data", tmp_path, *args, env=env) as server:
        client = sdk(server, server.create_key("alice"))
        lines = [chat(f"quick-{i}") for i in range(3)] + [chat(f"late-{i}", {"latency_ms": 60_000}) for i in range(4)]
        done = run_batch(client, lines, timeout=60)
        assert done.status == "expired" and done.expired_at is not None
        assert done.expires_at is not None and done.expires_at - done.created_at == 4
        output = lines_of(client, done.output_file_id)
        errors = lines_of(client, done.error_file_id)
        assert sorted(line["custom_id"] for line in output) == [f"quick-{i}" for i in range(3)]
        assert sorted(line["custom_id"] for line in errors) == [f"late-{i}" for i in range(4)]
        assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in errors)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["chat", "embeddings"])
def test_a_2000_request_batch(client: OpenAI, mock: MockUpstreamProcess, kind: str) -> None:
    ids = [f"{kind}-{i:04d}" for i in range(2000)]
    if kind == "chat":
        done = run_batch(client, [chat(i) for i in ids], CHAT, timeout=300)
    else:
        done = run_batch(client, [embedding(i) for i in ids], EMBEDDINGS, timeout=300)
    assert done.status == "completed" and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 2000
    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ids  # every request answered exactly once
    expected = "chat.completion" if kind == "chat" else "list"
    assert {line["response"]["body"]["object"] for line in output} == {expected}
    if kind == "embeddings":
        assert all(len(line["response"]["body"]["data"][0]["embedding"]) > 0 for line in output)
    assert done.usage is not None
    assert done.usage.total_tokens == sum(line["response"]["body"]["usage"]["total_tokens"] for line in output)
    assert done.status in TERMINAL


def test_the_readme_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    """examples/openai_batch.py, the README's example, as a user runs it."""
    example = Path(__file__).resolve().parents[2] / "examples" / "openai_batch.py"
    env = {**os.environ, "BATCHYARD_URL": server.url, "BATCHYARD_API_KEY": server.create_key("reader")}
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    first, second, third = done.stdout.splitlines()
    assert re.fullmatch(r"batch_\w+ validating", first)
    assert second.startswith("completed BatchRequestCounts(completed=100, failed=0, total=100) ")
    assert third == "Mock reply to: Say hello to #7"
