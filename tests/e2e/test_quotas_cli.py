"""Quotas end to end: ``batchyard quotas`` against a real ``batchyard serve`` (its worker does the work), locally
on the server's database and remotely with ``--url``; a job pauses exactly at its owner's budget and goes on when
the budget is raised."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.test_serve import CLI, ServerProcess, cli_env, free_port, running_server

from ..waits import wait_until
from .helpers import write_jsonl


def _run(server: ServerProcess, cwd: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI: on the server's database (no key), or through its API with ``key``."""
    if key is None:
        env = cli_env(server.data_dir)
    else:
        env = cli_env(cwd / "local-data", BATCHYARD_URL=server.url, BATCHYARD_API_KEY=key)
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def _json(server: ServerProcess, cwd: Path, *args: str, key: str | None = None) -> Any:
    done = _run(server, cwd, *args, "--json", key=key)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_a_budget_pauses_a_job_exactly_and_a_top_up_finishes_it(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port())) as server:
        admin = server.create_key("root", "admin")
        alice = server.create_key("alice", "member")

        done = _run(server, tmp_path, "quotas", "set", "alice", "--items", "25", "--period", "month")
        assert done.returncode == 0, done.stderr
        assert "25 left" in done.stdout and "per month, resets" in done.stdout

        items = write_jsonl(tmp_path / "items.jsonl", 60)
        job = _json(server, tmp_path, "submit", str(items), "--handler", "echo", key=alice)

        def paused() -> bool:
            now = _json(server, tmp_path, "jobs", "show", job["id"], key=alice)
            return bool(now["status"] == "paused" and now["counts"]["running"] == 0)

        wait_until(paused, timeout=60, what="the job to pause at the budget")
        shown = _json(server, tmp_path, "jobs", "show", job["id"], key=alice)
        assert shown["status_reason"] == "quota_exhausted"
        assert shown["counts"]["succeeded"] == 25 and shown["counts"]["queued"] == 35  # not one item more
        assert "25 of 25" in shown["status_message"]
        paused_events = [e for e in shown["events"] if e["type"] == "paused"]
        assert paused_events and paused_events[-1]["actor"] == "quota"

        listed = _run(server, tmp_path, "jobs", "list", key=alice)
        assert "waiting for quota" in listed.stdout, listed.stdout

        # The owner reads its quota remotely; only an admin may raise it.
        quota = _json(server, tmp_path, "quotas", "show", "alice", key=alice)
        assert (quota["exhausted"], quota["paused_jobs"], quota["remaining"]["items"]) == ("items", 1, 0)
        refused = _run(server, tmp_path, "quotas", "set", "alice", "--items", "1000", key=alice)
        assert refused.returncode != 0 and "admin" in refused.stderr and "Traceback" not in refused.stderr

        raised = _json(server, tmp_path, "quotas", "set", "alice", "--items", "70", key=admin)
        assert raised["resumed_jobs"] == [job["id"]] and raised["items"] == 70 and raised["period"] == "month"

        def finished() -> bool:
            return bool(_json(server, tmp_path, "jobs", "show", job["id"], key=alice)["status"] == "completed")

        wait_until(finished, timeout=60, what="the job to finish after the top-up")
        final = _json(server, tmp_path, "jobs", "show", job["id"], key=alice)
        assert final["counts"]["succeeded"] == 60 and final["status_reason"] is None
        types = [e["type"] for e in final["events"]]
        assert types.index("paused") < types.index("resumed") < types.index("completed")
        after = _json(server, tmp_path, "quotas", "show", "alice", key=alice)
        assert after["usage"]["items"] == 60 and after["remaining"]["items"] == 10

        shown_text = _run(server, tmp_path, "quotas", "show", "alice")
        assert "60 of 70 used, 10 left" in shown_text.stdout, shown_text.stdout


def test_quotas_cli_says_what_is_wrong(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    for args, phrase in (
        (["quotas", "set", "alice", "--items", "lots"], "not a whole number"),
        (["quotas", "set", "alice", "--items", "-3"], "cannot be negative"),
        (["quotas", "set", "alice", "--period", "week"], "day, month or total"),
        (["quotas", "set", "alice"], "say what to set"),
        (["quotas", "remove", "nobody"], "no quota for nobody"),
    ):
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0, args
        assert phrase in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    cleared = subprocess.run(
        [*CLI, "quotas", "set", "alice", "--items", "5", "--tokens", "none", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(cleared.stdout)["items"] == 5
