"""The ``openai`` handler in a real ``batchyard worker --upstream`` subprocess against a real
``batchyard mock-upstream``: results, usage and cost, keys, retries with Retry-After, final 4xx, no answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from batchyard import Batchyard, Settings
from batchyard.core.records import ItemRecord
from tests.integration.helpers import wait_finished
from tests.upstream import MockUpstreamProcess, start_mock_upstream

CLI = [sys.executable, "-m", "batchyard.cli.main"]
SECRET = "sk-mock-secret-4f1c9e"


class WorkerProcess:
    """``batchyard worker ARGS`` on a data dir; its output is drained so the pipes never fill."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
        full_env.update(BATCHYARD_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", COLUMNS="200", **(env or {}))
        self.process = subprocess.Popen(
            [*CLI, "worker", *args], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(s,), daemon=True)
            for s in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def chat_line(i: int, *, model: str = "mock-chat", **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": f"hello {i}"}], **extra}
    return {"custom_id": f"chat-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def embedding_line(i: int) -> dict[str, Any]:
    body = {"model": "mock-embed", "input": f"text number {i}"}
    return {"custom_id": f"emb-{i}", "method": "POST", "url": "/v1/embeddings", "body": body}


def items_by_key(app: Batchyard, job_id: str) -> dict[str, ItemRecord]:
    return {item.key: item for item in app.store.items.iter_items(job_id)}


@pytest.fixture
def secured_mock() -> Iterator[MockUpstreamProcess]:
    with start_mock_upstream("--api-key", SECRET) as mock:
        yield mock


def test_chat_and_embeddings_through_a_worker_sum_usage_and_cost(
    tmp_path: Path, secured_mock: MockUpstreamProcess
) -> None:
    routes = tmp_path / "upstreams.toml"
    routes.write_text(
        '[models."mock-chat"]\ninput_price_per_million = 2.0\noutput_price_per_million = 8.0\n\n'
        '[models."mock-*"]\ninput_price_per_million = 0.5\n'
    )
    data_dir = tmp_path / "data"
    app = Batchyard(Settings(data_dir=data_dir))
    worker = WorkerProcess(
        data_dir,
        "--upstream",
        secured_mock.url,
        env={"BATCHYARD_UPSTREAM_API_KEY": SECRET, "BATCHYARD_UPSTREAMS_FILE": str(routes)},
    )
    try:
        chat = app.submit("openai", [chat_line(i) for i in range(60)], params={"endpoint": "/v1/chat/completions"})
        embed = app.submit("openai", [embedding_line(i) for i in range(40)], params={"endpoint": "/v1/embeddings"})
        chat_view = wait_finished(app, chat.id, timeout=60)
        embed_view = wait_finished(app, embed.id, timeout=60)
    finally:
        worker.stop()
        app.close()

    assert "openai" in worker.output.split("handlers", 1)[1].split("·")[0]  # offered: an upstream is set
    assert SECRET not in worker.output
    app = Batchyard(Settings(data_dir=data_dir))
    try:
        assert chat_view.job.status == "completed" and chat_view.job.succeeded == 60
        assert embed_view.job.status == "completed" and embed_view.job.succeeded == 40
        chats = items_by_key(app, chat.id)
        first = chats["chat-7"].result
        assert first["status_code"] == 200
        assert first["request_id"].startswith("req_mock_")
        assert first["body"]["object"] == "chat.completion"
        assert first["body"]["choices"][0]["message"]["content"] == "Mock reply to: hello 7"
        assert SECRET not in json.dumps([item.result for item in chats.values()])

        prompt = sum(item.result["body"]["usage"]["prompt_tokens"] for item in chats.values())
        completion = sum(item.result["body"]["usage"]["completion_tokens"] for item in chats.values())
        usage = chat_view.job.usage
        assert usage["input_tokens"] == prompt and usage["output_tokens"] == completion
        assert usage["total_tokens"] == prompt + completion
        assert chat_view.job.cost == pytest.approx((prompt * 2.0 + completion * 8.0) / 1_000_000)

        embeds = items_by_key(app, embed.id)
        vector = embeds["emb-3"].result["body"]["data"][0]["embedding"]
        assert len(vector) == 16
        embed_prompt = sum(item.result["body"]["usage"]["prompt_tokens"] for item in embeds.values())
        assert embed_view.job.usage["input_tokens"] == embed_prompt
        assert embed_view.job.usage["output_tokens"] == 0
        assert embed_view.job.cost == pytest.approx(embed_prompt * 0.5 / 1_000_000)  # the pattern's price

        stats = secured_mock.stats()
        assert stats["by_status"] == {"200": 100}  # every request carried the key (else 401)
        assert all(count == 1 for count in stats["by_key"].values())
    finally:
        app.close()


def test_retries_honour_retry_after_and_final_answers_are_not_retried(
    tmp_path: Path, mock_upstream: MockUpstreamProcess
) -> None:
    dead_port = free_port()
    routes = tmp_path / "upstreams.toml"
    routes.write_text(
        f'[upstreams.dead]\nbase_url = "http://127.0.0.1:{dead_port}/v1"\n\n[models.gone]\nupstream = "dead"\n'
    )
    data_dir = tmp_path / "data"
    app = Batchyard(Settings(data_dir=data_dir))
    lines = [
        chat_line(1, mock={"fail": [429, 429], "retry_after": 1.5}),  # retried after 1.5 s, twice
        chat_line(2, mock={"fail": [500, 503]}),  # retried with backoff, then succeeds
        chat_line(3, mock={"status": 400}),  # final at once
        chat_line(4, mock={"status": 404}),  # final at once
        chat_line(5, mock={"status": 500}),  # retried, then fails with the last answer
        chat_line(6, mock={"status": 429, "retry_after": 3}),  # too long to wait inside the attempt
        chat_line(7, model="gone"),  # no answer at all
    ]
    worker = WorkerProcess(
        data_dir,
        "--upstream",
        mock_upstream.url,
        env={
            "BATCHYARD_UPSTREAMS_FILE": str(routes),
            "BATCHYARD_UPSTREAM_MAX_RETRIES": "2",
            "BATCHYARD_UPSTREAM_RETRY_WAIT_MAX_SECONDS": "2",
        },
    )
    try:
        job = app.submit("openai", lines, params={"endpoint": "/v1/chat/completions"}, max_attempts=1)
        view = wait_finished(app, job.id, timeout=90)
        items = items_by_key(app, job.id)
    finally:
        worker.stop()
        app.close()

    assert view.job.status == "completed"
    assert (view.job.succeeded, view.job.failed) == (2, 5)
    stats = mock_upstream.stats()
    arrivals = stats["arrivals"]

    retried = arrivals["hello 1"]
    assert len(retried) == 3 and items["chat-1"].status == "succeeded"
    assert retried[1] - retried[0] >= 1.5 - 0.05 and retried[2] - retried[1] >= 1.5 - 0.05
    assert len(arrivals["hello 2"]) == 3 and items["chat-2"].status == "succeeded"

    for key, status in (("chat-3", 400), ("chat-4", 404)):
        error = items[key].error
        assert error is not None
        assert error["code"] == f"http_{status}" and error["retryable"] is False
        assert error["detail"]["status_code"] == status
        assert error["detail"]["request_id"].startswith("req_mock_")
        assert error["detail"]["body"]["error"]["code"] == "mock_error"
        assert f"answered {status}" in error["message"]
    assert len(arrivals["hello 3"]) == 1 and len(arrivals["hello 4"]) == 1

    error = items["chat-5"].error
    assert error is not None and error["code"] == "http_500" and error["retryable"] is True
    assert error["detail"]["status_code"] == 500
    assert len(arrivals["hello 5"]) == 3  # 1 + BATCHYARD_UPSTREAM_MAX_RETRIES

    error = items["chat-6"].error
    assert error is not None and error["code"] == "http_429"
    assert len(arrivals["hello 6"]) == 1  # a 3 s Retry-After is not waited inside the attempt
    assert error["detail"]["status_code"] == 429

    error = items["chat-7"].error
    assert error is not None and error["code"] == "upstream_unreachable" and "detail" not in error
    assert "127.0.0.1" in error["message"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
