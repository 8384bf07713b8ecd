"""The whole job lifecycle over HTTP against a real ``batchyard serve`` subprocess: create, follow live over
Server-Sent Events, download partial results while it runs, pause/resume, finish, download the result files,
cancel and delete another job, and stop the server with a stream still open."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx

from ..waits import wait_until
from .test_serve import ServerProcess, bearer, free_port, running_server


class EventCollector(threading.Thread):
    """Reads /api/v1/stream in the background and keeps every job event."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.key = key
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream(
                "GET", f"{self.url}/api/v1/stream", headers=bearer(self.key), timeout=httpx.Timeout(5, read=60)
            ) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                self.connected.set()
                kind = None
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line.split(":", 1)[1].strip()
                    elif line.startswith("id:"):
                        self.ids.append(line.split(":", 1)[1].strip())
                    elif line.startswith("data:") and kind == "job":
                        self.events.append(json.loads(line.split(":", 1)[1]))
        except httpx.HTTPError:
            return  # the server went away: the test stops it on purpose


def test_job_lifecycle_over_http(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port())) as server:
        _lifecycle(server)
        stream = EventCollector(server.url, server.create_key("carol"))
        stream.start()
        assert stream.connected.wait(10)
        assert server.stop() == 0  # graceful, even with an event stream open


def _lifecycle(server: ServerProcess) -> None:
    key = server.create_key("alice")
    api = httpx.Client(base_url=server.url, headers=bearer(key), timeout=30)
    stream = EventCollector(server.url, key)
    stream.start()
    assert stream.connected.wait(10)

    created = api.post(
        "/api/v1/jobs",
        json={
            "handler": "sleep",
            "params": {"ms": 150},
            "concurrency": 2,
            "description": "e2e",
            "items": [{"custom_id": f"item-{i:02d}"} for i in range(30)],
        },
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    def job() -> dict[str, Any]:
        response = api.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200
        return dict(response.json())

    wait_until(lambda: job()["counts"]["succeeded"] >= 4, what="some items to finish")
    partial = api.get(f"/api/v1/jobs/{job_id}/results.jsonl")
    assert partial.status_code == 200 and partial.headers.get("x-batchyard-partial") == "true"
    lines = [json.loads(line) for line in partial.text.splitlines()]
    assert 4 <= len(lines) < 30 and all(line["status"] == "succeeded" for line in lines)
    assert api.get(f"/api/v1/jobs/{job_id}/artifacts.zip").status_code in (404, 409)

    paused = api.post(f"/api/v1/jobs/{job_id}/pause", json={"reason": "checking"}).json()
    assert paused["status"] == "paused"
    wait_until(
        lambda: any(e["id"] == job_id and e["status"] == "paused" for e in stream.events), what="paused on the stream"
    )
    assert api.post(f"/api/v1/jobs/{job_id}/resume").json()["status"] == "running"
    wait_until(lambda: job()["finished"], timeout=60, what="the job to finish")
    done = job()
    assert (done["status"], done["counts"]["succeeded"], done["percent"]) == ("completed", 30, 100)

    results = api.get(f"/api/v1/jobs/{job_id}/results.jsonl")
    assert results.headers.get("x-batchyard-partial") != "true"
    assert [json.loads(line)["key"] for line in results.text.splitlines()] == [f"item-{i:02d}" for i in range(30)]
    assert "attachment" in results.headers["content-disposition"]
    table = api.get(f"/api/v1/jobs/{job_id}/results.csv").text.splitlines()
    assert table[0].startswith("key,status,attempts") and len(table) == 31
    assert api.get(f"/api/v1/jobs/{job_id}/errors.jsonl").text == ""
    item = api.get(f"/api/v1/jobs/{job_id}/items/item-07").json()
    assert item["status"] == "succeeded" and item["result"] == {"slept_ms": 150.0}
    events = [e["type"] for e in api.get(f"/api/v1/jobs/{job_id}/events").json()["data"]]
    assert events == ["created", "started", "paused", "resumed", "finalizing", "completed"]

    # The live stream saw the job move: counters rising, then completed.
    wait_until(
        lambda: any(e["id"] == job_id and e["status"] == "completed" for e in stream.events), what="the SSE event"
    )
    mine = [e for e in stream.events if e["id"] == job_id]
    done_counts = [e["counts"]["done"] for e in mine]
    assert done_counts == sorted(done_counts) and len(set(done_counts)) >= 3
    assert {"running", "paused", "completed"} <= {e["status"] for e in mine}

    other = api.post(
        "/api/v1/jobs",
        json={"handler": "sleep", "params": {"ms": 200}, "concurrency": 1, "items": [{"n": i} for i in range(50)]},
    ).json()
    wait_until(lambda: api.get(f"/api/v1/jobs/{other['id']}").json()["counts"]["succeeded"] >= 1, what="the second job")
    cancelled = api.post(f"/api/v1/jobs/{other['id']}/cancel").json()
    assert cancelled["status"] in ("cancelling", "cancelled") and cancelled["counts"]["queued"] == 0
    wait_until(lambda: api.get(f"/api/v1/jobs/{other['id']}").json()["finished"], what="the cancel to settle")
    assert api.get(f"/api/v1/jobs/{other['id']}").json()["status"] == "cancelled"
    assert api.delete(f"/api/v1/jobs/{other['id']}").status_code == 204
    assert api.get(f"/api/v1/jobs/{other['id']}").status_code == 404
    api.close()
