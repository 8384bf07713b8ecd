"""Webhooks end to end: a real ``batchyard serve``, the ``batchyard webhooks`` and ``submit`` commands (remote and
local), and a real HTTP receiver on loopback that checks every signature with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from batchyard.client import Client
from tests.e2e.test_serve import CLI, cli_env, running_server

from ..receiver import run_receiver
from ..waits import wait_until
from .helpers import write_jsonl

PORTS = (18110, 18111)  # this suite's own ports (18100-18199)
ENV = {
    "BATCHYARD_ALLOW_PRIVATE_URLS": "true",  # the receiver is on loopback
    "BATCHYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0.5, 0.5, 0.5]",
    "BATCHYARD_OUTBOX_POLL_INTERVAL_MS": "100",
}


def cli(data_dir: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=cli_env(data_dir, **{**ENV, **env}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_json(data_dir: Path, cwd: Path, *args: str, **env: str) -> Any:
    done = cli(data_dir, cwd, *args, "--json", **env)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_serve_delivers_signed_events_to_an_endpoint_added_with_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    local = tmp_path / "client-data"  # the remote commands' own data dir: empty, all they see came over HTTP
    with (
        running_server(data, tmp_path, "--port", str(PORTS[0]), env=ENV) as server,
        run_receiver([500]) as endpoint,
        run_receiver() as own,
    ):
        key = cli(data, tmp_path, "keys", "create", "--owner", "alice", "--role", "member").stdout.strip()
        remote = {"BATCHYARD_URL": server.url, "BATCHYARD_API_KEY": key}
        made = cli_json(local, tmp_path, "webhooks", "add", endpoint.url, "--event", "job.completed", **remote)
        assert made["owner"] == "alice" and made["secret"].startswith("whsec_")
        listed = cli_json(local, tmp_path, "webhooks", "list", **remote)
        assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]

        items = write_jsonl(tmp_path / "items.jsonl", 3)
        job = cli_json(local, tmp_path, "submit", str(items), "-H", "echo", "--wait", "--webhook", own.url, **remote)
        assert job["status"] == "completed" and job["webhook_url"] == own.url

        first, retry = endpoint.wait_for(2)  # a 500 first, then the retry gets its 200
        assert first.headers["webhook-id"] == retry.headers["webhook-id"] and first.body == retry.body
        payload = Webhook(made["secret"]).verify(retry.body, retry.headers)
        assert (payload["type"], payload["data"]["id"]) == ("job.completed", job["id"])
        assert payload["data"]["counts"]["succeeded"] == 3
        default_secret = cli_json(local, tmp_path, "webhooks", "secret", **remote)["secret"]
        mine = own.wait_for(1)[0]
        assert Webhook(default_secret).verify(mine.body, mine.headers)["data"]["id"] == job["id"]

        def two_attempts() -> bool:
            log = cli_json(local, tmp_path, "webhooks", "deliveries", made["id"], **remote)
            return [(d["outcome"], d["status_code"]) for d in log] == [("delivered", 200), ("failed", 500)]

        wait_until(two_attempts, timeout=15, what="both attempts in the delivery log")
        with Client(server.url, key) as client:  # the Python client: the job's notifications, both delivered
            notes = client.job_notifications(job["id"])
        assert sorted((n.endpoint_id or "", n.url, n.status) for n in notes) == [
            ("", own.url, "delivered"),
            (made["id"], endpoint.url, "delivered"),
        ]
        shown = cli(local, tmp_path, "webhooks", "deliveries", made["id"], **remote)
        assert "delivered" in shown.stdout and "answered HTTP 500" in shown.stdout
        table = cli(data, tmp_path, "webhooks", "list")  # local mode on the server's own database
        assert made["id"] in table.stdout and made["secret"] not in table.stdout
        assert made["secret"] not in server.stdout + server.stderr  # never logged
        removed = cli(local, tmp_path, "webhooks", "remove", made["id"], **remote)
        assert removed.returncode == 0 and made["id"] in removed.stdout
        assert cli_json(local, tmp_path, "webhooks", "list", **remote) == []


def test_a_message_written_while_nothing_runs_is_sent_by_the_next_server(tmp_path: Path) -> None:
    """The outbox lives in the database: an event recorded by a CLI command (no server, no worker running) is
    delivered once a server starts on that database."""
    data = tmp_path / "data"
    with run_receiver() as receiver:
        made = cli_json(data, tmp_path, "webhooks", "add", receiver.url, "-e", "job.cancelled")
        job = cli_json(data, tmp_path, "submit", str(write_jsonl(tmp_path / "in.jsonl", 2)), "-H", "echo")
        assert cli(data, tmp_path, "jobs", "cancel", job["id"]).returncode == 0
        assert receiver.requests == []
        with running_server(data, tmp_path, "--port", str(PORTS[1]), env=ENV):
            request = receiver.wait_for(1, timeout=30)[0]
        payload = Webhook(made["secret"]).verify(request.body, request.headers)
        assert (payload["type"], payload["data"]["id"], payload["data"]["status"]) == (
            "job.cancelled",
            job["id"],
            "cancelled",
        )


def test_the_cli_refuses_private_targets_and_unknown_events_clearly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    strict = {"BATCHYARD_ALLOW_PRIVATE_URLS": "false"}
    refused = cli(data, tmp_path, "webhooks", "add", "http://127.0.0.1:9/hook", **strict)
    assert refused.returncode != 0 and "loopback" in refused.stderr and "BATCHYARD_ALLOW_PRIVATE_URLS" in refused.stderr
    meta = cli(data, tmp_path, "webhooks", "add", "http://169.254.169.254/", "--json")  # even when allowed
    assert meta.returncode != 0 and json.loads(meta.stdout)["error"]["param"] == "url"
    unknown = cli(data, tmp_path, "webhooks", "add", "https://hooks.example.com/x", "-e", "job.finished")
    assert unknown.returncode != 0 and "job.completed" in unknown.stderr
    help_text = cli(data, tmp_path, "webhooks", "--help").stdout
    assert "standardwebhooks" in help_text and "job.completed" in help_text
