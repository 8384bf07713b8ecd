"""``BATCHYARD_LOG_FORMAT=json``: serve and worker write one JSON object per line on stderr, with job and item ids,
and no keys or login tokens."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_serve import CLI, bearer, cli_env, free_port, running_server
from tests.waits import wait_until


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (fails on the first line that is not)."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"line {number} is not JSON: {line!r}") from exc
    return parsed


def test_serve_logs_json_lines_with_job_ids_and_no_secrets(tmp_path: Path) -> None:
    env = {"BATCHYARD_LOG_FORMAT": "json"}
    port = str(free_port())
    with running_server(tmp_path / "data", tmp_path, "--port", port, "--access-log", env=env) as server:
        key = server.create_key("alice")
        body = {"handler": "flaky", "items": [{"n": i} for i in range(3)], "params": {"failure_rate": 1}}
        created = httpx.post(
            f"{server.url}/api/v1/jobs?wait=60", json={**body, "max_attempts": 1}, headers=bearer(key), timeout=90
        )
        assert created.status_code in (200, 201), created.text
        job = created.json()
        assert job["finished"] and job["counts"]["failed"] == 3
        login = httpx.get(f"{server.url}/login?token={server.login_token}", follow_redirects=False)
        assert login.status_code < 500
        assert server.stop() == 0

    records = json_lines(server.stderr)
    assert {"time", "level", "logger", "message"} <= records[0].keys()
    failed = [r for r in records if r.get("job_id") == job["id"] and "failed" in r["message"]]
    assert len(failed) >= 3, records
    assert {r["item_key"] for r in failed if "item_key" in r} == {"1", "2", "3"}
    assert all(r["level"] == "warning" for r in failed)
    assert any(r["logger"] == "uvicorn.access" for r in records)  # the access log is JSON too
    assert key not in server.stderr and server.login_token not in server.stderr


def test_a_worker_logs_json_and_a_handlers_own_lines_carry_its_item(tmp_path: Path) -> None:
    (tmp_path / "loudapp.py").write_text(
        "import logging\n"
        "from batchyard import Batchyard\n"
        "app = Batchyard()\n"
        "@app.handler('loud')\n"
        "def loud(item, ctx):\n"
        "    logging.getLogger('loudapp').warning('handling %s', item['n'])\n"
        "    return item\n"
    )
    env = cli_env(tmp_path / "data", BATCHYARD_LOG_FORMAT="json")
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [*CLI, "worker", "--app", "loudapp:app"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=output
        )
    try:
        wait_until(lambda: "started" in log.read_text(), timeout=60, what="the worker to start")
        items = tmp_path / "in.jsonl"
        items.write_text("".join(json.dumps({"custom_id": f"row-{i}", "n": i}) + "\n" for i in range(4)))
        done = subprocess.run(
            [*CLI, "submit", str(items), "--handler", "loud", "--wait", "--json", "--app", "loudapp:app"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr + log.read_text()
        job_id = json.loads(done.stdout)["id"]
        wait_until(lambda: log.read_text().count("handling") >= 4, timeout=30, what="the handler's 4 log lines")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    records = json_lines(log.read_text())
    handled = [r for r in records if r["logger"] == "loudapp"]
    assert {(r["job_id"], r["item_key"], r["message"]) for r in handled} == {
        (job_id, f"row-{i}", f"handling {i}") for i in range(4)
    }
    assert {r["item_seq"] for r in handled} == {0, 1, 2, 3}  # 0-based positions in the input
    assert any(r.get("worker_id") and "started" in r["message"] for r in records)
