"""The CLI's remote mode (``--url``/``--key``) against a real ``batchyard serve`` subprocess.

The commands run with a local data dir of their own, empty: whatever they show came over HTTP. They need the
job, file and result routes of the API: these tests fail (not skip) when those are missing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_serve import CLI, ServerProcess, bearer, cli_env, free_port, running_server

from ..waits import wait_until
from .helpers import assert_clean_error, write_jsonl


class RemoteCli:
    """Runs ``batchyard`` against the server with one key (from BATCHYARD_URL / BATCHYARD_API_KEY)."""

    def __init__(self, server: ServerProcess, key: str, cwd: Path) -> None:
        self.server = server
        self.key = key
        self.cwd = cwd

    def run(
        self, *args: str, stdin: str | None = None, key: str | None = None, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = cli_env(
            self.cwd / "local-data",
            BATCHYARD_URL=url or self.server.url,
            BATCHYARD_API_KEY=key if key is not None else self.key,
        )
        done = subprocess.run(
            [*CLI, *args], cwd=self.cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        assert self.key not in done.stdout + done.stderr, "the API key was printed"
        return done

    def json(self, *args: str, stdin: str | None = None, key: str | None = None) -> Any:
        done = self.run(*args, "--json", stdin=stdin, key=key)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server")
    with running_server(root / "data", root, "--port", "0", "--concurrency", "32") as process:
        yield process


@pytest.fixture(scope="module")
def alice_key(server: ServerProcess) -> str:
    return server.create_key("alice", "member")


@pytest.fixture
def remote(server: ServerProcess, alice_key: str, tmp_path: Path) -> RemoteCli:
    return RemoteCli(server, alice_key, tmp_path)


# -- submit ---------------------------------------------------------------------------------------------------


def test_submit_wait_json_runs_the_file_on_the_server(remote: RemoteCli, tmp_path: Path) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 60)

    job = remote.json(
        "submit",
        str(items),
        "--handler",
        "echo",
        "--wait",
        "--description",
        "over http",
        "--tag",
        "e2e",
        "--param",
        "mode=fast",
    )

    assert job["status"] == "completed"
    assert job["owner"] == "alice"
    assert job["counts"] == {
        "total": 60,
        "queued": 0,
        "running": 0,
        "succeeded": 60,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
        "done": 60,
    }
    assert (job["description"], job["tags"], job["params"]) == ("over http", ["e2e"], {"mode": "fast"})
    assert job["source"] == "items.jsonl"
    assert job["result_files"]["results.jsonl"]["rows"] == 60
    assert not (tmp_path / "local-data" / "batchyard.db").exists()  # nothing happened locally


def test_submit_takes_url_and_key_as_flags_and_shows_progress(
    remote: RemoteCli, server: ServerProcess, tmp_path: Path
) -> None:
    items = write_jsonl(tmp_path / "items.jsonl", 25)

    done = remote.run(
        "submit",
        str(items),
        "-H",
        "sleep",
        "--param",
        "ms=20",
        "--wait",
        "--url",
        server.url,
        "--key",
        remote.key,
        key="",
        url="http://127.0.0.1:9",
    )

    assert done.returncode == 0, done.stderr
    assert "25/25" in done.stderr  # the progress bar's last frame
    assert "completed" in done.stdout and "25 succeeded" in done.stdout
    assert "jobs download job_" in done.stdout and f"--url {server.url}" in done.stdout
    assert done.stdout.count("jobs download job_") == 1  # one next step, and it reaches this server


def test_jobs_watch_follows_a_job_on_the_server(remote: RemoteCli, server: ServerProcess, tmp_path: Path) -> None:
    job = remote.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 25)), "-H", "sleep", "--param", "ms=20")

    done = remote.run("jobs", "watch", job["id"], "--url", server.url, url="http://127.0.0.1:9")

    assert done.returncode == 0, done.stderr
    assert "25/25" in done.stderr
    assert "completed" in done.stdout and "25 succeeded" in done.stdout
    assert f"jobs download {job['id']} -o DIR --url {server.url}" in done.stdout


def test_submit_from_stdin_and_csv_with_explicit_format(remote: RemoteCli, tmp_path: Path) -> None:
    lines = "".join(json.dumps({"custom_id": f"k{i}"}) + "\n" for i in range(5))
    piped = remote.json("submit", "-", "-H", "echo", "--wait", stdin=lines)
    assert piped["counts"]["succeeded"] == 5

    rows = tmp_path / "rows.txt"
    rows.write_text("custom_id,name\na,Ada\nb,Grace\n")
    from_csv = remote.json("submit", str(rows), "-H", "echo", "--format", "csv", "--wait")
    assert from_csv["counts"]["succeeded"] == 2


def test_submit_without_wait_says_how_to_follow_the_job(
    remote: RemoteCli, server: ServerProcess, tmp_path: Path
) -> None:
    done = remote.run(
        "submit",
        str(write_jsonl(tmp_path / "items.jsonl", 3)),
        "-H",
        "echo",
        "--schedule-in",
        "3600",
        "--url",
        server.url,
    )

    assert done.returncode == 0, done.stderr
    assert "Submitted job_" in done.stdout and "scheduled to start in" in done.stdout
    assert "batchyard jobs show job_" in done.stdout and f"--url {server.url}" in done.stdout
    assert "No worker is running" not in done.stdout  # serve runs one


def test_bad_input_lists_problems_exits_2_and_leaves_nothing_on_the_server(
    remote: RemoteCli, server: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a"}\n{not json\n{"custom_id": "b"}\n[1, 2]\n{"custom_id": "a"}\n')
    before = {j["id"] for j in remote.json("jobs", "list", "--limit", "1000")}

    done = remote.run("submit", str(bad), "-H", "echo", "--wait")

    assert_clean_error(
        done, 2, "bad.jsonl has 3 problems", "nothing was submitted", "invalid_json", "not_an_object", "duplicate_key"
    )
    problem_lines = [line.split()[0] for line in done.stderr.splitlines() if line.strip()[:1].isdigit()]
    assert problem_lines == ["2", "4", "5"]
    assert {j["id"] for j in remote.json("jobs", "list", "--limit", "1000")} == before
    files = httpx.get(f"{server.url}/api/v1/files", headers=bearer(remote.key)).json()["data"]
    assert "bad.jsonl" not in {f["filename"] for f in files}


def test_unknown_handler_is_one_red_line(remote: RemoteCli, tmp_path: Path) -> None:
    done = remote.run("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "nope")

    assert_clean_error(done, 1, "no handler named 'nope'")
    assert len(done.stderr.strip().splitlines()) == 1


# -- jobs -----------------------------------------------------------------------------------------------------


def test_jobs_list_and_show(remote: RemoteCli, tmp_path: Path) -> None:
    first = remote.json("submit", str(write_jsonl(tmp_path / "a.jsonl", 3)), "-H", "echo", "--wait")
    second = remote.json("submit", str(write_jsonl(tmp_path / "b.jsonl", 2)), "-H", "sleep", "--schedule-in", "3600")

    listed = [j["id"] for j in remote.json("jobs", "list", "--limit", "1000")]
    assert listed.index(second["id"]) < listed.index(first["id"])  # newest first
    assert len(remote.json("jobs", "list", "--limit", "1")) == 1
    assert first["id"] in [j["id"] for j in remote.json("jobs", "list", "--status", "completed", "--limit", "1000")]
    assert second["id"] not in [j["id"] for j in remote.json("jobs", "list", "--status", "completed")]
    assert {j["handler"] for j in remote.json("jobs", "list", "--handler", "sleep")} == {"sleep"}

    shown = remote.json("jobs", "show", first["id"])
    assert shown["counts"]["succeeded"] == 3
    assert shown["events"][0]["type"] == "created"
    assert shown["events"][-1]["type"] == "completed"

    table = remote.run("jobs", "list")
    assert table.returncode == 0, table.stderr
    assert first["id"] in table.stdout and second["id"] in table.stdout
    details = remote.run("jobs", "show", first["id"])
    assert details.returncode == 0, details.stderr
    for text in ("completed", "3 succeeded", "Result files", "results.jsonl", "Recent events", "created"):
        assert text in details.stdout
    scheduled = remote.run("jobs", "show", second["id"])
    assert "scheduled, starts in" in scheduled.stdout


def test_download_writes_the_result_files(remote: RemoteCli, tmp_path: Path) -> None:
    job = remote.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 40)), "-H", "echo", "--wait")
    out = tmp_path / "out"

    listing = remote.json("jobs", "download", job["id"], "-o", str(out))

    assert {f["name"] for f in listing["files"]} == {"results.jsonl", "errors.jsonl", "results.csv"}
    for f in listing["files"]:
        assert Path(f["path"]).stat().st_size == f["bytes"]
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in results] == [f"item-{i}" for i in range(40)]
    assert results[7]["result"] == {"custom_id": "item-7", "n": 7}
    assert (out / "errors.jsonl").read_text() == ""
    assert len((out / "results.csv").read_text().splitlines()) == 41
    assert sorted(p.name for p in out.iterdir()) == ["errors.jsonl", "results.csv", "results.jsonl"]  # no leftovers

    human = remote.run("jobs", "download", job["id"], "-o", str(tmp_path / "again"))
    assert human.returncode == 0, human.stderr
    assert "Wrote 3 files" in human.stdout


def test_download_before_the_results_exist_is_a_clear_error(remote: RemoteCli, tmp_path: Path) -> None:
    job = remote.json("submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "3600")

    done = remote.run("jobs", "download", job["id"], "-o", str(tmp_path / "out"))

    assert_clean_error(done, 1, "no result files yet")
    assert not (tmp_path / "out").exists()


def test_download_of_an_unfinished_job_offers_the_results_so_far(remote: RemoteCli, tmp_path: Path) -> None:
    job_id = remote.json(
        "submit", str(write_jsonl(tmp_path / "i.jsonl", 600)), "-H", "sleep", "--param", "ms=500", "--concurrency", "1"
    )["id"]
    wait_until(
        lambda: remote.json("jobs", "show", job_id)["counts"]["succeeded"],
        timeout=60,
        interval=0.2,  # each look runs the CLI in a process of its own
        what="the first items to finish",
    )
    assert remote.run("jobs", "pause", job_id).returncode == 0
    paused = wait_until(
        lambda: (j := remote.json("jobs", "show", job_id))["counts"]["running"] == 0 and j,
        timeout=60,
        interval=0.2,
        what="the items in flight at the pause to finish",
    )
    done = paused["counts"]["succeeded"]

    refused = remote.run("jobs", "download", job_id, "-o", str(tmp_path / "out"))
    assert_clean_error(refused, 1, "no result files yet", "--partial")

    so_far = remote.json("jobs", "download", job_id, "-o", str(tmp_path / "out"), "--partial")
    assert so_far["partial"] is True
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == done
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["errors.jsonl", "results.csv", "results.jsonl"]
    assert remote.run("jobs", "cancel", job_id).returncode == 0


def test_pause_resume_cancel_delete(remote: RemoteCli, tmp_path: Path) -> None:
    job_id = remote.json(
        "submit", str(write_jsonl(tmp_path / "items.jsonl", 6)), "-H", "echo", "--schedule-in", "3600"
    )["id"]

    assert remote.json("jobs", "pause", job_id)["status"] == "paused"
    assert_clean_error(remote.run("jobs", "pause", job_id), 1, "cannot pause a job that is paused")
    assert remote.json("jobs", "resume", job_id)["status"] == "queued"
    assert_clean_error(remote.run("jobs", "delete", job_id, "--yes"), 1, "cannot delete a job that is queued")
    cancelled = remote.run("jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "is now cancelled" in cancelled.stdout
    events = remote.json("jobs", "show", job_id)["events"]
    assert [(e["type"], e["actor"]) for e in events[1:]] == [
        ("paused", "alice"),
        ("resumed", "alice"),
        ("cancelled", "alice"),
    ]

    refused = remote.run("jobs", "delete", job_id, stdin="n\n")
    assert refused.returncode == 1 and "Delete job" in refused.stderr
    assert remote.json("jobs", "delete", job_id, "--yes") == {"deleted": job_id}
    assert_clean_error(remote.run("jobs", "show", job_id), 1, f"no job {job_id!r}")


def test_retry_requeues_the_failed_items(remote: RemoteCli, tmp_path: Path) -> None:
    job = remote.json(
        "submit",
        str(write_jsonl(tmp_path / "items.jsonl", 5)),
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
    assert job["status"] == "completed" and job["counts"]["failed"] == 5

    retried = remote.json("jobs", "retry", job["id"])

    assert retried["retried_items"] == 5
    assert retried["job"]["id"] == job["id"]
    assert "retried" not in retried["job"]


def test_retry_runs_a_cancelled_job_again_on_the_server(remote: RemoteCli, tmp_path: Path) -> None:
    job_id = remote.json(
        "submit", str(write_jsonl(tmp_path / "items.jsonl", 4)), "-H", "echo", "--schedule-in", "3600"
    )["id"]
    assert remote.json("jobs", "cancel", job_id)["status"] == "cancelled"

    assert_clean_error(remote.run("jobs", "retry", job_id, "--only-failed"), 1, "has no failed items to retry")
    again = remote.run("jobs", "retry", job_id)

    assert again.returncode == 0, again.stderr
    assert "Running the cancelled job again, queued 4 items" in again.stdout
    shown = remote.json("jobs", "show", job_id)
    assert (shown["status"], shown["counts"]["queued"], shown["counts"]["cancelled"]) == ("queued", 4, 0)
    assert shown["events"][-1]["type"] == "rerun" and shown["events"][-1]["data"]["cancelled"] == 4


# -- who may do what, and what goes wrong -----------------------------------------------------------------------


def test_another_owner_sees_no_such_job_and_a_viewer_cannot_change_it(
    remote: RemoteCli, server: ServerProcess, tmp_path: Path
) -> None:
    job_id = remote.json(
        "submit", str(write_jsonl(tmp_path / "items.jsonl", 2)), "-H", "echo", "--schedule-in", "3600"
    )["id"]
    bob = server.create_key("bob", "member")
    viewer = server.create_key("alice", "viewer")

    for command in ("show", "cancel", "download"):
        assert_clean_error(remote.run("jobs", command, job_id, key=bob), 1, f"no job {job_id!r}")
    assert job_id not in [j["id"] for j in remote.json("jobs", "list", key=bob)]
    assert remote.json("jobs", "show", job_id, key=viewer)["id"] == job_id
    assert_clean_error(remote.run("jobs", "cancel", job_id, key=viewer), 1, "can only read")
    assert remote.json("jobs", "show", job_id)["status"] == "queued"


def test_a_bad_key_exits_1_with_a_clear_message(remote: RemoteCli) -> None:
    wrong = "by_" + "x" * 40

    done = remote.run("jobs", "list", key=wrong)

    assert_clean_error(done, 1, "invalid or revoked API key", "BATCHYARD_API_KEY")
    assert wrong not in done.stderr


def test_a_missing_key_says_how_to_get_one(remote: RemoteCli) -> None:
    assert_clean_error(remote.run("jobs", "list", key=""), 1, "needs an API key", "batchyard keys create")


def test_an_unreachable_url_says_which_url(remote: RemoteCli) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = remote.run("jobs", "show", "job_x", url=url)

    assert_clean_error(done, 1, f"could not reach the Batchyard server at {url}", "batchyard serve")


def test_a_url_without_a_scheme_is_refused(remote: RemoteCli) -> None:
    assert_clean_error(remote.run("jobs", "list", url="localhost:8000"), 1, "not an http(s) URL")


def test_app_and_url_together_are_refused(remote: RemoteCli) -> None:
    assert_clean_error(remote.run("jobs", "list", "--app", "mypkg:app"), 1, "--app", "drop --app")


UPLOAD_LIMIT_BYTES = 2000


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server without workers and with a tiny upload limit."""
    with running_server(
        tmp_path / "other",
        tmp_path,
        "--port",
        "0",
        "--no-workers",
        env={"BATCHYARD_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT_BYTES)},
    ) as process:
        yield process


def test_without_a_worker_the_job_waits_and_an_upload_past_the_limit_is_refused(
    small_server: ServerProcess, tmp_path: Path
) -> None:
    cli = RemoteCli(small_server, small_server.create_key("alice"), tmp_path)

    small = cli.run("submit", str(write_jsonl(tmp_path / "small.jsonl", 2)), "-H", "echo")
    big = write_jsonl(tmp_path / "big.jsonl", 5000, padding="x" * 50)
    too_big = cli.run("submit", str(big), "-H", "echo")
    piped = cli.run("submit", "-", "-H", "echo", stdin=big.read_text())

    assert small.returncode == 0, small.stderr
    assert "No worker is running for 'echo'" in small.stdout
    for done in (too_big, piped):
        assert_clean_error(done, 1, "larger than the upload limit", f"({UPLOAD_LIMIT_BYTES} bytes)")
    assert len(cli.json("jobs", "list")) == 1
    files = httpx.get(f"{small_server.url}/api/v1/files", headers=bearer(cli.key)).json()["data"]
    assert [f["filename"] for f in files] == ["small.jsonl"]
