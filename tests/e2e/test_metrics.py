"""``GET /metrics`` of a real ``batchyard serve``: it changes as a batch runs, and it is for admins unless public."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_serve import CLI, ServerProcess, bearer, cli_env, free_port, running_server
from tests.waits import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ServerProcess, key: str | None) -> Samples:
    response = httpx.get(f"{server.url}/metrics", headers=bearer(key) if key else {}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def processed(samples: Samples, handler: str, outcome: str) -> float:
    return samples.get(("batchyard_items_processed_total", (("handler", handler), ("outcome", outcome))), 0.0)


def run_job(server: ServerProcess, key: str, body: dict[str, object]) -> dict[str, object]:
    created = httpx.post(f"{server.url}/api/v1/jobs?wait=60", json=body, headers=bearer(key), timeout=90)
    assert created.status_code in (200, 201), created.text
    job: dict[str, object] = created.json()
    assert job["finished"], job
    return job


def test_metrics_change_as_a_batch_runs(tmp_path: Path) -> None:
    no_backoff = {"BATCHYARD_BACKOFF_BASE_SECONDS": "0"}
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port()), env=no_backoff) as server:
        admin = server.create_key("ops", "admin")
        alice = server.create_key("alice")
        before = scrape(server, admin)
        assert ("batchyard_claim_seconds_count", ()) in before  # defined from the start
        assert ("batchyard_jobs", (("status", "queued"),)) in before  # database gauges, zero when idle

        run_job(server, alice, {"handler": "echo", "items": [{"n": i} for i in range(25)]})
        failing = {"handler": "flaky", "items": [{"n": i} for i in range(4)], "params": {"failure_rate": 1}}
        run_job(server, alice, {**failing, "max_attempts": 2})
        after = scrape(server, admin)

        assert processed(after, "echo", "succeeded") - processed(before, "echo", "succeeded") == 25
        assert processed(after, "echo", "failed") == processed(before, "echo", "failed")
        assert processed(after, "flaky", "retried") - processed(before, "flaky", "retried") == 4
        assert processed(after, "flaky", "failed") - processed(before, "flaky", "failed") == 4
        assert processed(after, "flaky", "succeeded") == 0
        claimed = after[("batchyard_items_claimed_total", (("handler", "echo"),))]
        assert claimed - before.get(("batchyard_items_claimed_total", (("handler", "echo"),)), 0) == 25
        assert after[("batchyard_claim_seconds_count", ())] > before[("batchyard_claim_seconds_count", ())]
        assert after[("batchyard_flush_seconds_count", ())] > before.get(("batchyard_flush_seconds_count", ()), 0)
        durations = [
            v
            for (name, labels), v in after.items()
            if name == "batchyard_job_duration_seconds_count" and ("handler", "echo") in labels
        ]
        assert durations == [1.0]
        # nothing left queued or running once both jobs finished
        assert after.get(("batchyard_queue_depth", (("handler", "echo"),)), 0) == 0
        assert after.get(("batchyard_items_in_flight", (("handler", "echo"),)), 0) == 0


def test_queue_depth_counts_queued_items_of_jobs_workers_may_take(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port()), "--no-workers") as server:
        admin = server.create_key("ops", "admin")
        alice = server.create_key("alice")
        created = httpx.post(
            f"{server.url}/api/v1/jobs", json={"handler": "echo", "items": list(range(7))}, headers=bearer(alice)
        )
        assert created.status_code == 201, created.text
        paused = httpx.post(
            f"{server.url}/api/v1/jobs", json={"handler": "echo", "items": list(range(3))}, headers=bearer(alice)
        ).json()
        assert httpx.post(f"{server.url}/api/v1/jobs/{paused['id']}/pause", headers=bearer(alice)).status_code == 200
        samples = scrape(server, admin)
        assert samples[("batchyard_queue_depth", (("handler", "echo"),))] == 7
        assert samples[("batchyard_items_waiting", (("handler", "echo"), ("status", "paused")))] == 3
        assert samples[("batchyard_jobs", (("status", "queued"),))] == 1
        assert samples[("batchyard_jobs", (("status", "paused"),))] == 1


def test_metrics_need_an_admin_key_unless_public(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port()), "--no-workers") as server:
        member = server.create_key("alice")
        viewer = server.create_key("alice", "viewer")
        nobody = httpx.get(f"{server.url}/metrics")
        assert nobody.status_code == 401
        assert nobody.json()["error"]["code"] == "unauthenticated"
        for key in (member, viewer):
            refused = httpx.get(f"{server.url}/metrics", headers=bearer(key))
            assert refused.status_code == 403
            assert "BATCHYARD_METRICS_PUBLIC" in refused.json()["error"]["message"]
        wrong = httpx.get(f"{server.url}/metrics", headers=bearer("by_not_a_key"))
        assert wrong.status_code == 401

    public = {"BATCHYARD_METRICS_PUBLIC": "true"}
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port()), "--no-workers", env=public) as server:
        samples = scrape(server, None)
        assert ("batchyard_jobs", (("status", "running"),)) in samples


def test_a_worker_process_serves_its_own_metrics_on_metrics_port(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path / "data")
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [*CLI, "worker", "--metrics-port", str(port)], cwd=tmp_path, env=env, stdout=output, stderr=output
        )
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def up() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what="the worker's metrics port")
        items = tmp_path / "in.jsonl"
        items.write_text("".join(f'{{"n": {i}}}\n' for i in range(12)))
        submitted = subprocess.run(
            [*CLI, "submit", str(items), "--handler", "echo", "--wait", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stderr + log.read_text()

        def counted() -> bool:
            families = text_string_to_metric_families(httpx.get(url, timeout=5).text)
            return any(
                s.name == "batchyard_items_processed_total"
                and s.labels == {"handler": "echo", "outcome": "succeeded"}
                and s.value == 12
                for family in families
                for s in family.samples
            )

        wait_until(counted, timeout=30, what="12 echo items counted by the worker")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_upstream_requests_of_the_openai_handler_are_counted(tmp_path: Path) -> None:
    from tests.upstream import start_mock_upstream

    with start_mock_upstream("--latency-ms", "5") as mock:
        args = ("--port", str(free_port()), "--upstream", mock.url)
        with running_server(tmp_path / "data", tmp_path, *args) as server:
            admin = server.create_key("ops", "admin")
            before = scrape(server, admin)
            requests = [
                {
                    "custom_id": f"r{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "mock-chat", "messages": [{"role": "user", "content": f"hi {i}"}]},
                }
                for i in range(6)
            ]
            job = run_job(server, server.create_key("alice"), {"handler": "openai", "items": requests})
            assert job["counts"]["succeeded"] == 6, job  # type: ignore[index]
            after = scrape(server, admin)
    key = ("batchyard_upstream_requests_total", (("handler", "openai"), ("status", "200")))
    assert after[key] - before.get(key, 0) == 6
    seconds = ("batchyard_upstream_request_seconds_count", (("handler", "openai"),))
    assert after[seconds] - before.get(seconds, 0) == 6
