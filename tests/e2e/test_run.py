"""``batchyard run`` as a user runs it: real subprocesses against a real ``batchyard mock-upstream``: OpenAI output
lines, input checked first, killed mid-way (SIGKILL) and run again with every request answered once, and on a
server (``--url``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from batchyard import Batchyard, Settings
from batchyard.data.run_output import run_key
from tests.e2e.test_serve import running_server
from tests.upstream import MockUpstreamProcess, start_mock_upstream
from tests.waits import wait_until

CLI = [sys.executable, "-m", "batchyard.cli.main"]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(data_dir), COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "run", *args], env=env_for(data_dir, **env), capture_output=True, text=True, timeout=timeout, check=False
    )


def write_requests(path: Path, n: int, *, extra: dict[int, dict[str, Any]] | None = None) -> Path:
    with path.open("w") as f:
        for i in range(n):
            body: dict[str, Any] = {"model": "mock-chat", "messages": [{"role": "user", "content": f"request {i}"}]}
            body.update((extra or {}).get(i, {}))
            line = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
            f.write(json.dumps(line) + "\n")
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_writes_openai_output_lines_and_a_second_run_sends_nothing(
    tmp_path: Path, mock_upstream: MockUpstreamProcess
) -> None:
    requests = write_requests(tmp_path / "in.jsonl", 40, extra={7: {"mock": {"status": 400}}})
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    data = tmp_path / "data"

    done = run_cli(data, "-i", str(requests), "-o", str(out), "-e", str(errors), "--upstream", mock_upstream.url)

    assert done.returncode == 0, done.stderr
    assert "39 succeeded" in done.stdout and "1 failed" in done.stdout and "tokens" in done.stdout
    lines = read_lines(out)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(40) if i != 7]  # input order
    first = lines[0]
    assert set(first) == {"id", "custom_id", "response", "error"} and first["error"] is None
    assert first["id"].startswith("batch_req_")
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"].startswith("req_mock_")
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "Mock reply to: request 0"
    [failed] = read_lines(errors)
    assert failed["custom_id"] == "req-7" and failed["error"] is None
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["code"] == "mock_error"
    answered = mock_upstream.stats()["requests"]
    assert answered == 40  # the 400 was final: not retried

    again = run_cli(data, "-i", str(requests), "-o", str(out), "-e", str(errors), "--upstream", mock_upstream.url)
    assert again.returncode == 0, again.stderr
    assert "resuming: 40 of 40 requests already done" in again.stderr
    assert mock_upstream.stats()["requests"] == answered  # nothing sent again
    assert read_lines(out) == lines

    same_file = tmp_path / "all.jsonl"  # another output path: another run; failures beside the successes
    third = run_cli(data, "-i", str(requests), "-o", str(same_file), "--upstream", mock_upstream.url)
    assert third.returncode == 0, third.stderr
    assert sorted(line["custom_id"] for line in read_lines(same_file)) == sorted(f"req-{i}" for i in range(40))


def test_a_bad_input_file_runs_nothing_and_says_where(tmp_path: Path, mock_upstream: MockUpstreamProcess) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}
    bad.write_text(
        json.dumps(good) + "\n" + json.dumps(good) + "\n{oops\n"
        + json.dumps({**good, "custom_id": "b", "body": {"model": "m", "stream": True}}) + "\n"
    )  # fmt: skip
    out = tmp_path / "out.jsonl"

    done = run_cli(tmp_path / "data", "-i", str(bad), "-o", str(out), "--upstream", mock_upstream.url)

    assert done.returncode == 2, done.stderr
    assert "4 problems" not in done.stderr or "nothing was submitted" in done.stderr
    for phrase in ("duplicate_custom_id", "invalid_json_line", "streaming_unsupported"):
        assert phrase in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert mock_upstream.stats()["requests"] == 0


def test_no_upstream_is_a_clear_error(tmp_path: Path) -> None:
    requests = write_requests(tmp_path / "in.jsonl", 1)
    done = run_cli(tmp_path / "data", "-i", str(requests), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1 and "needs an upstream" in done.stderr and "Traceback" not in done.stderr


def test_killed_mid_way_and_run_again_answers_every_request_once(tmp_path: Path) -> None:
    with start_mock_upstream("--latency-ms", "30", "--latency-spread", "0") as mock:
        killed_and_resumed(tmp_path, mock)


def killed_and_resumed(tmp_path: Path, mock_upstream: MockUpstreamProcess) -> None:
    total = 400
    requests = write_requests(tmp_path / "in.jsonl", total)
    out = tmp_path / "out.jsonl"
    data = tmp_path / "data"
    args = ["-i", str(requests), "-o", str(out), "--upstream", mock_upstream.url, "--concurrency", "4"]
    first = subprocess.Popen(
        [*CLI, "run", *args], env=env_for(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: sum(mock_upstream.stats()["by_key"].values()) >= 60, what="60 answers", timeout=60)
        # Hold every further request at the upstream, so that when the run is killed nothing is half answered
        # (answered but not yet recorded): what was answered is recorded, what was not never will be.
        httpx.post(f"{mock_upstream.root}/_gate?open=0", timeout=10).raise_for_status()
        key = run_key(requests, out)[0]
        app = Batchyard(Settings(data_dir=data))
        try:
            found = wait_until(lambda: app.store.jobs.find_idempotent_job("local", key), what="the run's job")
            job_id = found[1] if found else ""

            def settled() -> bool:
                stats = mock_upstream.stats()
                answered = sum(stats["by_key"].values())
                return bool(stats["waiting"] > 0 and app.service.get(job_id).job.succeeded == answered)

            wait_until(settled, what="every answer recorded and the rest held", timeout=30)
            before = app.service.get(job_id).job.succeeded
        finally:
            app.close()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    # The held requests' client is gone: the upstream drops them unanswered; then let requests through again.
    wait_until(lambda: mock_upstream.stats()["waiting"] == 0, what="the held requests to be dropped", timeout=30)
    httpx.post(f"{mock_upstream.root}/_gate?open=1", timeout=10).raise_for_status()
    assert 60 <= before < total
    assert not out.exists()

    again = run_cli(data, *args, timeout=180)

    assert again.returncode == 0, again.stderr
    assert f"resuming: {before} of {total} requests already done" in again.stderr
    lines = read_lines(out)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"req-{i}" for i in range(total))
    assert all(line["response"]["status_code"] == 200 for line in lines)
    answers = mock_upstream.stats()["by_key"]
    assert len(answers) == total and set(answers.values()) == {1}, {k: v for k, v in answers.items() if v != 1}


def test_interrupted_run_stops_gracefully_and_the_same_command_continues(tmp_path: Path) -> None:
    with start_mock_upstream("--latency-ms", "100", "--latency-spread", "0") as mock:
        requests = write_requests(tmp_path / "in.jsonl", 120)
        out = tmp_path / "out.jsonl"
        args = ["-i", str(requests), "-o", str(out), "--upstream", mock.url, "--concurrency", "4"]
        first = subprocess.Popen(
            [*CLI, "run", *args], env=env_for(tmp_path / "data"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        wait_until(lambda: sum(mock.stats()["by_key"].values()) >= 12, what="12 answers", timeout=60)
        first.send_signal(signal.SIGTERM)  # as Ctrl-C: requests in flight finish, nothing is lost
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 130, stderr
        assert "Run the same command again to continue" in stderr and "Traceback" not in stderr
        assert not out.exists()
        answered = sum(mock.stats()["by_key"].values())

        again = run_cli(tmp_path / "data", *args, timeout=120)

        assert again.returncode == 0, again.stderr
        assert f"resuming: {answered} of 120 requests already done" in again.stderr
        assert len(read_lines(out)) == 120
        answers = mock.stats()["by_key"]
        assert len(answers) == 120 and set(answers.values()) == {1}


def test_run_on_a_server_with_url(tmp_path: Path, mock_upstream: MockUpstreamProcess) -> None:
    requests = write_requests(tmp_path / "in.jsonl", 25, extra={3: {"mock": {"status": 422}}})
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    server_env = {"BATCHYARD_UPSTREAM_URL": mock_upstream.url}
    with running_server(tmp_path / "server", tmp_path, "--port", "0", env=server_env) as server:
        key = server.create_key("alice")
        args = ["-i", str(requests), "-o", str(out), "-e", str(errors), "--url", server.url]
        done = run_cli(tmp_path / "client", *args, BATCHYARD_API_KEY=key)
        assert done.returncode == 0, done.stderr
        again = run_cli(tmp_path / "client", *args, BATCHYARD_API_KEY=key)
        assert again.returncode == 0, again.stderr
        assert "resuming: 25 of 25" in again.stderr
    lines = read_lines(out)
    assert len(lines) == 24 and all(line["response"]["status_code"] == 200 for line in lines)
    [failed] = read_lines(errors)
    assert failed["custom_id"] == "req-3" and failed["response"]["status_code"] == 422
    assert mock_upstream.stats()["requests"] == 25  # the second run found the job: nothing sent again
