"""The ``batchyard`` command line, run as a user runs it: real subprocesses on a SQLite data dir in tmp_path."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ..waits import wait_until
from .helpers import assert_clean_error, write_jsonl

CLI = [sys.executable, "-m", "batchyard.cli.main"]
BIG_BATCH = 100_000


class Cli:
    """Runs ``batchyard`` against one data dir; ``json()`` asserts success and that stdout is only JSON."""

    def __init__(self, data_dir: Path, cwd: Path) -> None:
        self.data_dir = data_dir
        self.cwd = cwd

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
        env.update(BATCHYARD_DATA_DIR=str(self.data_dir), COLUMNS="200", PYTHONUNBUFFERED="1")
        return env

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Any:
        done = self.run(*args, "--json", stdin=stdin, timeout=timeout)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *args], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", tmp_path)


# -- submit ---------------------------------------------------------------------------------------------------


def test_submit_wait_json_processes_the_batch_in_process(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 25)

    job = cli.json(
        "submit",
        str(items),
        "--handler",
        "echo",
        "--wait",
        "--description",
        "first try",
        "--tag",
        "demo",
        "--tag",
        "e2e",
    )

    assert job["status"] == "completed"
    assert job["counts"] == {
        "total": 25,
        "queued": 0,
        "running": 0,
        "succeeded": 25,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
        "done": 25,
    }
    assert job["description"] == "first try"
    assert job["tags"] == ["demo", "e2e"]
    assert job["source"] == "items.jsonl"
    assert job["result_files"]["results.jsonl"]["rows"] == 25


def test_submit_wait_prints_a_summary_with_where_the_results_are(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 7)

    done = cli.run("submit", str(items), "-H", "echo", "--wait")

    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    assert "7 succeeded" in done.stdout
    assert "results.jsonl" in done.stdout
    job_id = cli.json("jobs", "list")[0]["id"]
    assert str(cli.data_dir / "files" / "jobs" / job_id) in done.stdout
    assert f"batchyard jobs download {job_id}" in done.stdout
    assert "7/7" in done.stderr  # the progress bar's last frame


def test_submit_wait_runs_only_the_submitted_job(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 12)
    first = cli.json("submit", str(items), "--handler", "echo")

    second = cli.json("submit", str(items), "--handler", "echo", "--wait")

    assert (second["status"], second["counts"]["succeeded"]) == ("completed", 12)
    left = cli.json("jobs", "show", first["id"])
    assert (left["status"], left["counts"]["done"], left["counts"]["running"]) == ("queued", 0, 0)


def test_submit_without_wait_prints_the_id_and_how_to_follow_it(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 3)

    done = cli.run("submit", str(items), "-H", "echo", "--schedule-in", "3600")

    assert done.returncode == 0, done.stderr
    job_id = cli.json("jobs", "list")[0]["id"]
    assert f"batchyard jobs show {job_id}" in done.stdout
    assert "No worker is running for 'echo'" in done.stdout


def test_jobs_list_and_show_say_when_no_live_worker_takes_a_job(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 3)), "-H", "echo")
    assert job["workers_alive"] == 0

    listed = cli.run("jobs", "list")
    shown = cli.run("jobs", "show", job["id"])

    assert listed.returncode == 0 and "no live worker for echo" in listed.stdout
    assert shown.returncode == 0 and "no live worker for echo" in shown.stdout
    assert "batchyard worker" in shown.stdout  # the next step


def test_jobs_list_hands_a_stopped_workers_items_back_once_its_lease_is_past(cli: Cli, tmp_path: Path) -> None:
    from batchyard import Batchyard

    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 4)), "-H", "echo")
    app = Batchyard(data_dir=cli.data_dir)
    try:
        assert app.store.claims.claim_items("gone", {"echo": 10}, 0.2) is not None  # then nobody runs them
    finally:
        app.close()
    time.sleep(0.3)  # past the lease: what this tests (the service test checks nothing happens before)

    counts = {j["id"]: j["counts"] for j in cli.json("jobs", "list")}[job["id"]]

    assert (counts["queued"], counts["running"]) == (4, 0)


def test_jobs_list_filters_by_several_statuses_and_search_and_exports_csv(cli: Cli, tmp_path: Path) -> None:
    import csv
    import io

    done = cli.json(
        "submit", str(write_jsonl(tmp_path / "a.jsonl", 2)), "-H", "echo", "--wait", "--description", "March mailing"
    )
    queued = cli.json(
        "submit", str(write_jsonl(tmp_path / "b.jsonl", 2)), "-H", "echo", "--description", "nightly export"
    )

    active = cli.json("jobs", "list", "--status", "active")
    both = cli.json("jobs", "list", "--status", "queued,completed", "--search", "MARCH")
    by_id = cli.json("jobs", "list", "-q", queued["id"][:18])
    exported = cli.run("jobs", "list", "--status", "completed", "--status", "queued", "--csv")
    bad = cli.run("jobs", "list", "--status", "runing")

    assert [j["id"] for j in active] == [queued["id"]]
    assert [j["id"] for j in both] == [done["id"]]
    assert [j["id"] for j in by_id] == [queued["id"]]
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["id"], r["status"], r["description"]) for r in rows] == [
        (queued["id"], "queued", "nightly export"),
        (done["id"], "completed", "March mailing"),
    ]
    assert bad.returncode == 2 and "unknown status 'runing'" in bad.stderr


def test_submit_reads_stdin_and_job_parameters(cli: Cli) -> None:
    lines = "".join(json.dumps({"custom_id": f"k{i}"}) + "\n" for i in range(4))

    job = cli.json(
        "submit",
        "-",
        "-H",
        "echo",
        "--wait",
        "--param",
        "ms=5",
        "--param",
        "mode=fast",
        "--params-json",
        '{"nested": {"a": [1, 2]}, "mode": "slow"}',
        stdin=lines,
    )

    assert job["status"] == "completed"
    assert job["counts"]["succeeded"] == 4
    assert job["source"] == "stdin"
    assert job["params"] == {"nested": {"a": [1, 2]}, "mode": "fast", "ms": 5}


def test_submit_csv_with_explicit_format(cli: Cli, tmp_path: Path) -> None:
    rows = tmp_path / "rows.txt"
    rows.write_text("custom_id,name\na,Ada\nb,Grace\n")

    job = cli.json("submit", str(rows), "-H", "echo", "--format", "csv", "--wait")

    assert job["counts"]["succeeded"] == 2


def test_bad_input_lists_problems_by_line_exits_2_and_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a"}\n{not json\n{"custom_id": "b"}\n[1, 2]\n{"custom_id": "a"}\n')

    done = cli.run("submit", str(bad), "-H", "echo", "--wait")

    assert_clean_error(
        done, 2, "bad.jsonl has 3 problems", "nothing was submitted", "invalid_json", "not_an_object", "duplicate_key"
    )
    problem_lines = [line.split()[0] for line in done.stderr.splitlines() if line.strip()[:1].isdigit()]
    assert problem_lines == ["2", "4", "5"]
    assert cli.json("jobs", "list") == []


def test_many_bad_lines_show_the_first_20_and_a_count_of_the_rest(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n" * 32)

    done = cli.run("submit", str(bad), "-H", "echo")  # with --json the problems go to stdout as JSON too

    assert_clean_error(done, 2, "32 problems", "and 12 more")
    assert done.stderr.count("invalid_json") == 20


def test_unknown_handler_and_bad_options_are_clear_errors(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 2)

    assert_clean_error(cli.run("submit", str(items), "-H", "nope"), 1, "no handler named 'nope'")
    assert_clean_error(cli.run("submit", str(items), "-H", "echo", "--params-json", "[1]"), 2, "JSON object")
    assert_clean_error(cli.run("submit", str(items), "-H", "echo", "--param", "novalue"), 2, "key=value")
    assert_clean_error(cli.run("submit", str(items), "-H", "echo", "--priority", "5000"), 1, "priority")
    assert cli.json("jobs", "list") == []


# -- jobs -----------------------------------------------------------------------------------------------------


def test_jobs_list_and_show(cli: Cli, tmp_path: Path) -> None:
    first = cli.json("submit", str(write_jsonl(tmp_path / "a.jsonl", 3)), "-H", "echo", "--wait")
    second = cli.json("submit", str(write_jsonl(tmp_path / "b.jsonl", 2)), "-H", "sleep", "--schedule-in", "3600")

    listed = cli.json("jobs", "list")
    assert [j["id"] for j in listed] == [second["id"], first["id"]]  # newest first
    assert [j["id"] for j in cli.json("jobs", "list", "--status", "completed")] == [first["id"]]
    assert [j["id"] for j in cli.json("jobs", "list", "--handler", "sleep")] == [second["id"]]
    assert len(cli.json("jobs", "list", "--limit", "1")) == 1

    shown = cli.json("jobs", "show", first["id"])
    assert shown["counts"]["succeeded"] == 3
    assert shown["settings"]["max_attempts"] >= 1
    assert shown["events"][0]["type"] == "created"
    assert shown["events"][-1]["type"] == "completed"

    table = cli.run("jobs", "list")
    assert table.returncode == 0
    assert first["id"] in table.stdout and second["id"] in table.stdout
    assert "completed" in table.stdout and "queued" in table.stdout

    details = cli.run("jobs", "show", first["id"])
    assert details.returncode == 0
    for text in ("completed", "3 succeeded", "Result files", "results.jsonl", "Recent events", "created"):
        assert text in details.stdout
    scheduled = cli.run("jobs", "show", second["id"])
    assert "scheduled, starts in 59m" in scheduled.stdout or "scheduled, starts in 1h" in scheduled.stdout


def test_empty_list_says_how_to_start(cli: Cli) -> None:
    done = cli.run("jobs", "list")
    assert done.returncode == 0
    assert "No jobs yet" in done.stdout


def test_download_writes_the_result_files(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 40)), "-H", "echo", "--wait")
    out = tmp_path / "out"

    listing = cli.json("jobs", "download", job["id"], "-o", str(out))

    names = {f["name"] for f in listing["files"]}
    assert names == {"results.jsonl", "errors.jsonl", "results.csv"}
    for f in listing["files"]:
        assert Path(f["path"]).stat().st_size == f["bytes"]
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in results] == [f"item-{i}" for i in range(40)]
    assert results[7]["result"] == {"custom_id": "item-7", "n": 7}
    assert (out / "errors.jsonl").read_text() == ""
    assert len((out / "results.csv").read_text().splitlines()) == 41  # header + one row per item

    human = cli.run("jobs", "download", job["id"], "-o", str(tmp_path / "again"))
    assert human.returncode == 0
    assert "Wrote 3 files" in human.stdout and "results.jsonl" in human.stdout


def test_download_before_results_exist_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "3600")

    done = cli.run("jobs", "download", job["id"], "-o", str(tmp_path / "out"))

    assert_clean_error(done, 1, "no result files yet")
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_cancel_of_a_finished_job_and_unknown_ids_exit_1_with_one_line(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--wait")

    done = cli.run("jobs", "cancel", job["id"])
    assert_clean_error(done, 1, "cannot cancel a job that is completed")
    assert len(done.stderr.strip().splitlines()) == 1

    for command in ("show", "cancel", "pause", "resume", "retry", "download"):
        assert_clean_error(cli.run("jobs", command, "job_doesnotexist"), 1, "no job 'job_doesnotexist'")
    assert cli.json("jobs", "show", job["id"])["status"] == "completed"


def test_pause_resume_cancel_delete_a_scheduled_job(cli: Cli, tmp_path: Path) -> None:
    before = time.time()
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 6)), "-H", "echo", "--schedule-in", "3600")
    job_id = job["id"]
    assert job["status"] == "queued"
    assert job["scheduled_at"] >= before + 3500

    assert cli.json("jobs", "pause", job_id)["status"] == "paused"
    assert_clean_error(cli.run("jobs", "pause", job_id), 1, "cannot pause a job that is paused")
    assert cli.json("jobs", "resume", job_id)["status"] == "queued"  # never started, so back to queued
    cancelled = cli.json("jobs", "cancel", job_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"]["cancelled"] == 6
    assert cancelled["counts"]["succeeded"] == 0

    events = cli.json("jobs", "show", job_id)["events"]
    assert [(e["type"], e["actor"]) for e in events[1:]] == [
        ("paused", "cli"),
        ("resumed", "cli"),
        ("cancelled", "cli"),
    ]

    refused = cli.run("jobs", "delete", job_id, stdin="n\n")
    assert refused.returncode == 1
    assert "Delete job" in refused.stderr
    assert cli.json("jobs", "show", job_id)["id"] == job_id

    assert cli.json("jobs", "delete", job_id, "--yes") == {"deleted": job_id}
    assert_clean_error(cli.run("jobs", "show", job_id), 1, "no job")


def test_human_output_of_moves(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "3600")

    paused = cli.run("jobs", "pause", job["id"])
    assert paused.returncode == 0
    assert f"Paused: {job['id']} is now paused" in paused.stdout
    confirmed = cli.run("jobs", "cancel", job["id"])
    assert "is now cancelled" in confirmed.stdout
    deleted = cli.run("jobs", "delete", job["id"], stdin="y\n")
    assert deleted.returncode == 0, deleted.stderr
    assert f"Deleted {job['id']}" in deleted.stdout


def test_delete_refuses_an_active_job_before_asking(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "3600")

    done = cli.run("jobs", "delete", job["id"], stdin="y\n")

    assert_clean_error(done, 1, "cannot delete a job that is queued")
    assert "Delete job" not in done.stderr
    assert cli.json("jobs", "show", job["id"])["status"] == "queued"


def test_retry_requeues_the_failed_items(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 5)
    job = cli.json(
        "submit",
        str(items),
        "-H",
        "flaky",
        "--param",
        "failure_rate=1",
        "--param",
        "permanent=true",
        "--max-attempts",
        "1",
        "--wait",
    )
    assert job["status"] == "completed"  # partly (here: fully) failed items still complete the job
    assert job["counts"]["failed"] == 5
    out = tmp_path / "out"
    cli.json("jobs", "download", job["id"], "-o", str(out))
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 5
    assert errors[0]["error"]["code"] == "flaky"

    retried = cli.json("jobs", "retry", job["id"])

    assert retried["retried_items"] == 5
    assert retried["job"]["counts"]["failed"] == 0
    assert retried["job"]["counts"]["queued"] == 5
    assert_clean_error(cli.run("jobs", "retry", job["id"]), 1, "no failed items to retry")


# -- --app, worker, db ------------------------------------------------------------------------------------------

USER_APP = """
from batchyard import Batchyard

app = Batchyard()


@app.handler("shout")
def shout(item, ctx):
    return {"text": item["text"].upper()}
"""


def test_app_option_loads_the_users_handlers(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "userjobs.py").write_text(textwrap.dedent(USER_APP))
    items = tmp_path / "items.jsonl"
    items.write_text('{"custom_id": "a", "text": "hello"}\n{"custom_id": "b", "text": "batch"}\n')

    job = cli.json("submit", str(items), "-H", "shout", "--app", "userjobs:app", "--wait")

    assert job["counts"]["succeeded"] == 2
    cli.json("jobs", "download", job["id"], "-o", str(tmp_path / "out"), "--app", "userjobs:app")
    results = [json.loads(line)["result"] for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert results == [{"text": "HELLO"}, {"text": "BATCH"}]
    assert_clean_error(cli.run("jobs", "list", "--app", "userjobs:nope"), 1, "has no attribute 'nope'")
    assert_clean_error(cli.run("jobs", "list", "--app", "missingmodule:app"), 1, "could not import module")
    assert [j["id"] for j in cli.json("jobs", "list", "--app", "userjobs")] == [job["id"]]  # its ``app``


def test_global_flags_override_the_environment(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    job = cli.json(
        "--data-dir",
        str(other),
        "submit",
        str(write_jsonl(tmp_path / "i.jsonl", 2)),
        "-H",
        "echo",
        "--schedule-in",
        "60",
    )

    assert (other / "batchyard.db").exists()
    assert cli.json("jobs", "list") == []  # BATCHYARD_DATA_DIR still points at the default dir
    assert [j["id"] for j in cli.json("--data-dir", str(other), "jobs", "list")] == [job["id"]]
    db_url = f"sqlite:///{other / 'batchyard.db'}"
    assert [j["id"] for j in cli.json("--db", db_url, "jobs", "list")] == [job["id"]]


def command_paths() -> list[list[str]]:
    """Every command users can type, e.g. ``["jobs", "list"]``, read from the command tree itself."""
    import typer

    from batchyard.cli.main import app

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        children = getattr(command, "commands", None)
        if children is None:
            yield path
            return
        for name, child in sorted(children.items()):
            yield from walk(child, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_every_command_takes_data_dir_and_db_after_its_name(cli: Cli, tmp_path: Path) -> None:
    paths = command_paths()
    assert ["worker"] in paths and ["jobs", "list"] in paths and ["keys", "revoke"] in paths
    db_url = f"sqlite:///{tmp_path / 'other' / 'batchyard.db'}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        helps = list(
            pool.map(lambda p: (p, cli.run(*p, "--data-dir", str(tmp_path / "x"), "--db", db_url, "--help")), paths)
        )

    for path, done in helps:
        assert done.returncode == 0, (path, done.stderr)
        assert "--data-dir" in done.stdout and "--db" in done.stdout, path


def test_data_dir_and_db_after_the_command_are_used(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    items = str(write_jsonl(tmp_path / "i.jsonl", 2))

    job = cli.json("submit", items, "-H", "echo", "--schedule-in", "60", "--data-dir", str(other))

    assert (other / "batchyard.db").exists()
    assert cli.json("jobs", "list") == []  # BATCHYARD_DATA_DIR still points at the default dir
    assert [j["id"] for j in cli.json("jobs", "list", "--data-dir", str(other))] == [job["id"]]
    db_url = f"sqlite:///{other / 'batchyard.db'}"
    assert cli.json("jobs", "show", job["id"], "--db", db_url)["id"] == job["id"]
    # after the command beats before it, as a closer flag should
    assert cli.json("--data-dir", str(tmp_path / "nowhere"), "jobs", "list", "--db", db_url)[0]["id"] == job["id"]
    cancelled = cli.run("jobs", "cancel", job["id"], "--data-dir", str(other))
    assert cancelled.returncode == 0, cancelled.stderr
    assert cli.run("keys", "create", "--owner", "ci", "--data-dir", str(other)).returncode == 0
    assert [k["owner"] for k in cli.json("keys", "list", "--db", db_url)] == ["ci"]
    assert cli.json("keys", "list") == []
    worker = cli.run("worker", "--handlers", "bogus", "--data-dir", str(other))
    assert_clean_error(worker, 1, "unknown handler 'bogus'")


@pytest.fixture
def worker(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    process = cli.popen("worker", "--concurrency", "16")
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=10)


def test_worker_runs_jobs_submitted_from_another_process(
    cli: Cli, tmp_path: Path, worker: subprocess.Popen[str]
) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 30)
    submitted = cli.run("submit", str(items), "-H", "sleep", "--param", "ms=20")
    assert submitted.returncode == 0, submitted.stderr
    job_id = cli.json("jobs", "list")[0]["id"]
    assert f"batchyard jobs show {job_id}" in submitted.stdout

    finished = wait_until(
        lambda: (j := cli.json("jobs", "show", job_id))["status"] == "completed" and j,
        timeout=60,
        interval=0.2,  # each look runs the CLI in a process of its own
        what="the worker to finish the job",
    )

    assert finished["counts"]["succeeded"] == 30
    assert any(e["type"] == "started" for e in finished["events"])
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "handlers echo, flaky, http, sleep" in stdout
    assert f"database sqlite:///{cli.data_dir / 'batchyard.db'}" in stdout
    assert "Worker stopped: 30 items finished" in stdout
    assert "Traceback" not in stderr


def test_jobs_watch_follows_a_job_to_its_summary(cli: Cli, tmp_path: Path, worker: subprocess.Popen[str]) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 30)), "-H", "sleep", "--param", "ms=20")

    done = cli.run("jobs", "watch", job["id"])

    assert done.returncode == 0, done.stderr
    assert "30/30" in done.stderr  # the progress bar's last frame
    assert "completed" in done.stdout and "30 succeeded" in done.stdout
    assert done.stdout.count(f"batchyard jobs download {job['id']}") == 1  # one next step
    assert cli.json("jobs", "watch", job["id"])["counts"]["succeeded"] == 30

    scheduled = cli.json("submit", str(write_jsonl(tmp_path / "later.jsonl", 2)), "-H", "echo", "--schedule-in", "600")
    assert cli.run("jobs", "cancel", scheduled["id"]).returncode == 0
    cancelled = cli.run("jobs", "watch", scheduled["id"], "--json")
    assert cancelled.returncode == 1, cancelled.stderr  # like submit --wait: the job did not complete
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_ctrl_c_stops_watching_and_leaves_the_job_running(cli: Cli, tmp_path: Path) -> None:
    job = cli.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "600")
    watching = cli.popen("jobs", "watch", job["id"])
    assert watching.stderr is not None
    for line in watching.stderr:  # the bar's header: it is following the job now
        if job["id"] in line:
            break
    watching.send_signal(signal.SIGINT)
    stdout, stderr = watching.communicate(timeout=30)

    assert watching.returncode == 130, stderr
    assert stdout == ""
    assert "Stopped watching" in stderr and "the job goes on" in stderr
    assert f"batchyard jobs watch {job['id']}" in stderr
    assert "Traceback" not in stderr
    assert cli.json("jobs", "show", job["id"])["status"] == "queued"


def test_download_of_an_unfinished_job_offers_the_results_so_far(
    cli: Cli, tmp_path: Path, worker: subprocess.Popen[str]
) -> None:
    job_id = cli.json(
        "submit",
        str(write_jsonl(tmp_path / "items.jsonl", 600)),  # five minutes of work, one item at a time
        "-H",
        "sleep",
        "--param",
        "ms=500",
        "--concurrency",
        "1",
    )["id"]
    wait_until(
        lambda: cli.json("jobs", "show", job_id)["counts"]["succeeded"],
        timeout=60,
        interval=0.2,  # each look runs the CLI in a process of its own
        what="the first items to finish",
    )
    assert cli.run("jobs", "pause", job_id).returncode == 0
    paused = wait_until(
        lambda: (j := cli.json("jobs", "show", job_id))["counts"]["running"] == 0 and j,
        timeout=60,
        interval=0.2,
        what="the items in flight at the pause to finish",
    )
    done = paused["counts"]["succeeded"]
    assert 0 < done < 600

    refused = cli.run("jobs", "download", job_id, "-o", str(tmp_path / "out"))
    assert_clean_error(refused, 1, "no result files yet", f"jobs download {job_id}", "--partial")

    so_far = cli.json("jobs", "download", job_id, "-o", str(tmp_path / "out"), "--partial")
    assert so_far["partial"] is True
    assert sorted(f["name"] for f in so_far["files"]) == ["errors.jsonl", "results.csv", "results.jsonl"]
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == done
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == done + 1
    human = cli.run("jobs", "download", job_id, "-o", str(tmp_path / "again"), "--partial")
    assert human.returncode == 0, human.stderr
    assert "partial" in human.stdout and f"{done} of 600 items finished so far" in human.stdout


def test_worker_hides_the_database_password_and_fails_cleanly(cli: Cli) -> None:
    done = cli.run("--db", "postgresql://batch:hunter2@127.0.0.1:1/batch", "worker", timeout=60)

    assert done.returncode == 1
    assert "postgresql://batch:***@127.0.0.1:1/batch" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "Error:" in done.stderr


def test_worker_rejects_unknown_handlers(cli: Cli) -> None:
    assert_clean_error(cli.run("worker", "--handlers", "echo,bogus"), 1, "unknown handler 'bogus'")


def test_db_upgrade_prints_the_revision(cli: Cli) -> None:
    done = cli.run("db", "upgrade")

    assert done.returncode == 0, done.stderr
    assert "is at revision" in done.stdout
    assert (cli.data_dir / "batchyard.db").exists()


HELP_COMMANDS = [
    [],
    ["submit"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
    ["jobs"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "watch"],
    ["jobs", "cancel"],
    ["jobs", "pause"],
    ["jobs", "resume"],
    ["jobs", "retry"],
    ["jobs", "delete"],
    ["jobs", "download"],
]


def test_help_of_every_command(cli: Cli) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda words: (words, cli.run(*words, "--help")), HELP_COMMANDS))

    for words, done in results:
        assert done.returncode == 0, (words, done.stderr)
        assert "Usage:" in done.stdout, words
        if len(words) == 2 or words in (["submit"], ["worker"]):  # every command documents its use by example
            assert "batchyard " + " ".join(words) in done.stdout, words
    root = results[0][1].stdout
    assert "BATCHYARD_DATA_DIR" in root and "BATCHYARD_DATABASE_URL" in root
    for command in ("submit", "worker", "jobs", "db"):
        assert command in root


def test_version(cli: Cli) -> None:
    done = cli.run("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("batchyard ")


# -- scale ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100k_item_batch_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "big.jsonl", BIG_BATCH)
    started = time.monotonic()

    job = cli.json("submit", str(items), "-H", "echo", "--wait", timeout=240)

    elapsed = time.monotonic() - started
    assert job["status"] == "completed"
    assert job["counts"]["succeeded"] == BIG_BATCH
    assert job["counts"]["failed"] == 0
    cli.json("jobs", "download", job["id"], "-o", str(tmp_path / "out"))
    with (tmp_path / "out" / "results.jsonl").open() as results:
        keys = [json.loads(line)["key"] for line in results]
    assert len(keys) == BIG_BATCH
    assert keys[0] == "item-0" and keys[-1] == f"item-{BIG_BATCH - 1}"
    assert elapsed < 60, f"100,000 echo items took {elapsed:.1f}s through the CLI"


# -- the app's own rules: PauseJob, SkipItem; running a cancelled job again ------------------------------------

RULES_APP = """
from pathlib import Path

from batchyard import Batchyard, PauseJob, SkipItem

app = Batchyard()
BALANCE = Path(__file__).with_name("balance.txt")


def spend_a_token(item, ctx):
    tokens = int(BALANCE.read_text())
    if tokens <= 0:
        raise PauseJob("Token balance exhausted: 0 of 1,200 left")
    BALANCE.write_text(str(tokens - 1))


@app.handler("article", concurrency=1, admit=spend_a_token)
def article(item, ctx):
    if item.get("skip"):
        raise SkipItem("keyword already covered")
    return {"title": item["keyword"].title()}
"""


def test_a_paused_and_skipping_job_in_the_cli(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "rulesapp.py").write_text(textwrap.dedent(RULES_APP))
    (tmp_path / "balance.txt").write_text("3")
    items = tmp_path / "keywords.jsonl"
    items.write_text("".join(json.dumps({"keyword": f"kw {i}", "skip": i == 1}) + "\n" for i in range(5)))
    job = cli.json("submit", str(items), "-H", "article", "--app", "rulesapp:app")
    worker = cli.popen("worker", "--app", "rulesapp:app")
    try:
        paused = wait_until(
            lambda: (
                (j := cli.json("jobs", "show", job["id"], "--app", "rulesapp:app"))["status"] == "paused"
                and j["counts"]["running"] == 0
                and j
            ),
            timeout=60,
            interval=0.2,
            what="the admit hook to pause the job",
        )
        assert (paused["status_reason"], paused["status_message"]) == (
            "paused_by_handler",
            "Token balance exhausted: 0 of 1,200 left",
        )
        assert (paused["counts"]["succeeded"], paused["counts"]["skipped"], paused["counts"]["queued"]) == (2, 1, 2)
        assert paused["events"][-1]["type"] == "paused"
        shown = cli.run("jobs", "show", job["id"], "--app", "rulesapp:app")
        assert "paused by the handler: Token balance exhausted: 0 of 1,200 left" in shown.stdout
        assert "1 skipped" in shown.stdout
        listed = cli.run("jobs", "list", "--app", "rulesapp:app")
        assert "paused by the handler: Token balance exhausted" in listed.stdout

        (tmp_path / "balance.txt").write_text("10")  # the top-up
        resumed = cli.run("jobs", "resume", job["id"], "--app", "rulesapp:app")
        assert resumed.returncode == 0, resumed.stderr
        done = wait_until(
            lambda: (j := cli.json("jobs", "show", job["id"], "--app", "rulesapp:app"))["finished"] and j,
            timeout=60,
            interval=0.2,
            what="the job to finish after the top-up",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert (done["status"], done["status_reason"], done["counts"]["succeeded"], done["counts"]["skipped"]) == (
        "completed",
        None,
        4,
        1,
    )
    assert done["percent"] == 100.0
    final = cli.run("jobs", "show", job["id"], "--app", "rulesapp:app").stdout
    assert "4 succeeded" in final and "1 skipped" in final and "paused by" not in final
    out = tmp_path / "out"
    cli.json("jobs", "download", job["id"], "-o", str(out), "--app", "rulesapp:app")
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "skipped", "succeeded", "succeeded", "succeeded"]
    assert lines[1]["message"] == "keyword already covered"
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [(r["status"], r["error_type"], r["error_message"]) for r in rows if r["key"] == "2"] == [
        ("skipped", "SkipItem", "keyword already covered")
    ]


def test_retry_runs_a_cancelled_job_again(cli: Cli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 3)
    job = cli.json("submit", str(items), "-H", "echo", "--schedule-in", "3600")
    assert cli.json("jobs", "cancel", job["id"])["status"] == "cancelled"

    assert_clean_error(cli.run("jobs", "retry", job["id"], "--only-failed"), 1, "has no failed items to retry")
    again = cli.run("jobs", "retry", job["id"])

    assert again.returncode == 0, again.stderr
    assert "Running the cancelled job again, queued 3 items" in again.stdout
    shown = cli.json("jobs", "show", job["id"])
    assert (shown["status"], shown["counts"]["queued"], shown["counts"]["cancelled"]) == ("queued", 3, 0)
    assert shown["events"][-1]["type"] == "rerun"
    assert cli.json("jobs", "cancel", job["id"])["status"] == "cancelled"
    rerun = cli.json("jobs", "retry", job["id"])
    assert rerun["retried_items"] == 3 and rerun["job"]["status"] == "queued"
