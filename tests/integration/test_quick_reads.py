"""``jobs list`` and ``jobs show`` on SQLite answer without the app (services/quick_reads.py, store/sqlite_reads.py)
exactly as they do with it: the same JSON, the same tables, the same rescue of expired leases.

One SQLite data dir holds a job in every status a user meets (queued, scheduled, running with a live worker and
items reporting progress, paused, completed with result files, completed with failures, failed, cancelled), and
each test compares the quick path with the full one (the app's services and the wire models) at one frozen
moment. SQLite only: the quick path never reads PostgreSQL (a PostgreSQL URL takes the full path, tested below).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import typer.testing
from sqlalchemy import text

from batchyard import Batchyard, ItemContext
from batchyard.cli.backends import LocalBackend
from batchyard.cli.main import app as cli_app
from batchyard.core.records import JobFilter, JobQuery, Outcome, ProgressReport
from batchyard.services import quick_reads
from batchyard.settings import Settings
from batchyard.wire import JobOut

from .helpers import wait_finished


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Batchyard, dict[str, str]]]:
    """A data dir with a job in each status; returns the app on it and {what: job id}."""
    data_dir = tmp_path_factory.mktemp("quick") / "data"
    app = Batchyard(Settings(data_dir=data_dir), demo_handlers=True)

    @app.handler("odd_fails", max_attempts=1)
    def odd_fails(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        ctx.add_usage(cost=0.25, tokens=3)
        if item["n"] % 2:
            raise ValueError(f"odd {item['n']}")
        return {"double": item["n"] * 2}

    jobs: dict[str, str] = {}
    jobs["completed"] = app.submit("echo", [{"n": i} for i in range(6)], description="March mailing").id
    app.job(jobs["completed"]).wait(timeout=30)
    jobs["partly_failed"] = app.submit(
        "odd_fails", [{"n": i} for i in range(6)], tags=["march", "50%_off"], metadata={"team": "growth"}
    ).id
    app.job(jobs["partly_failed"]).wait(timeout=30)
    jobs["failed"] = app.service.submit("odd_fails", [{"n": 1}, {"n": 3}, {"n": 2}], max_failures=0).id
    app.job(jobs["failed"]).wait(timeout=30)
    wait_finished(app, jobs["failed"])
    jobs["cancelled"] = app.submit("echo", [{"n": i} for i in range(3)], description="nightly export").id
    app.service.cancel(jobs["cancelled"], reason="not needed")
    jobs["paused"] = app.service.submit("sleep", [{"ms": 1}] * 4, project="alpha", priority=5, concurrency=2).id
    app.service.pause(jobs["paused"], reason="waiting for a top-up")
    jobs["scheduled"] = app.service.submit(
        "echo", [{"n": 1}], scheduled_at=time.time() + 3600, expires_in_seconds=7200, owner="someone", project="alpha"
    ).id
    jobs["queued"] = app.service.submit("echo", [{"n": i} for i in range(5)], params={"size": 3}, timeout_seconds=9).id
    # Running: a live worker holds items of it, some report progress, a few finished (with usage), samples exist.
    jobs["running"] = app.service.submit(
        "sleep", [{"custom_id": f"k{i}", "ms": 1} for i in range(10)], description="Big_run", max_failure_rate=0.5
    ).id
    app.store.workers.register_worker("w-live", "host", 1, ["sleep"], 8)
    app.store.workers.register_worker("w-other", "host", 2, ["sleep"], 8, jobs=["job_elsewhere"])
    batch = app.store.claims.claim_items("w-live", {"sleep": 6}, 3600, job_ids=[jobs["running"]])
    assert batch is not None and len(batch.items) == 6
    now = time.time()
    finished = [
        Outcome(jobs["running"], it.seq, batch.lease_token, "succeeded", result="1", finished_at=now, cost=0.5,
                usage={"tokens": 2}, duration=0.1)
        for it in batch.items[:2]
    ]  # fmt: skip
    app.store.claims.complete_items(finished)
    reports = [
        ProgressReport(jobs["running"], it.seq, batch.lease_token, 3 + it.seq, 10 if it.seq % 2 else None, "page", now)
        for it in batch.items[2:]
    ]
    app.store.progress.record(reports)
    app.store.upkeep.record_progress_samples(0.0)
    try:
        yield app, jobs
    finally:
        app.close()


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> float:
    """One moment for both paths: durations, rates and "2m ago" are computed from it."""
    moment = time.time()
    monkeypatch.setattr(time, "time", lambda: moment)
    return moment


def _local(app: Batchyard) -> quick_reads.LocalSqlite:
    local = quick_reads.local_sqlite(app.settings.data_dir, None, environ={})
    assert local is not None
    return local


FILTERS = [
    JobFilter(),
    *(JobFilter(statuses=(s,)) for s in ("queued", "running", "paused", "completed", "failed", "cancelled")),
    JobFilter(statuses=("queued", "running", "paused", "finalizing", "cancelling")),  # --status active
    JobFilter(statuses=("completed", "failed", "cancelled", "expired")),  # --status finished
    JobFilter(handler="echo"),
    JobFilter(handler="sleep", statuses=("running", "paused")),
    JobFilter(project="alpha"),
    JobFilter(owner="someone"),
    JobFilter(owner="local", project="alpha"),
    JobFilter(search="march"),  # description or tag, any case
    JobFilter(search="MARCH"),
    JobFilter(search="50%_"),  # LIKE's wildcards stand for themselves
    JobFilter(search="big_"),
    JobFilter(search="job_"),  # an id prefix: a key range
    JobFilter(search="job_0"),
    JobFilter(search="nothing like it"),
    JobFilter(statuses=("expired",)),
]


@pytest.mark.parametrize("where", FILTERS, ids=repr)
@pytest.mark.parametrize("limit", [1, 3, 1000])
def test_a_quick_list_is_the_services_list_as_json(
    corpus: tuple[Batchyard, dict[str, str]], frozen: float, where: JobFilter, limit: int
) -> None:
    app, _ = corpus
    full = [JobOut.of(v).model_dump(mode="json") for v in app.service.list_jobs(JobQuery.of(where, limit=limit))]

    quick = quick_reads.list_jobs(_local(app), where, limit=limit)

    assert quick == full
    assert json.dumps(quick) == json.dumps(full)  # same types too: 0.0, not 0


def test_the_corpus_has_what_the_comparisons_need(corpus: tuple[Batchyard, dict[str, str]]) -> None:
    app, jobs = corpus
    app.store.claims.heartbeat("w-live", 4, 3600)  # live, however long the tests before took
    statuses = {what: app.service.get(job_id).job.status for what, job_id in jobs.items()}
    assert statuses == {
        "completed": "completed",
        "partly_failed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
        "paused": "paused",
        "scheduled": "queued",
        "queued": "queued",
        "running": "running",
    }
    running = JobOut.of(app.service.get(jobs["running"]))
    assert running.workers_alive == 1 and running.current and running.running_progress > 0
    assert running.items_per_second is not None and running.eta_seconds is not None and running.usage
    assert JobOut.of(app.service.get(jobs["partly_failed"])).result_files


@pytest.mark.parametrize(
    "what", ["completed", "partly_failed", "failed", "cancelled", "paused", "scheduled", "queued", "running"]
)
@pytest.mark.parametrize("events", [1, 10, 50])
def test_a_quick_show_is_the_services_job_events_and_files(
    corpus: tuple[Batchyard, dict[str, str]], frozen: float, what: str, events: int
) -> None:
    app, jobs = corpus
    backend = LocalBackend(cast(Any, None), app, None)
    job = JobOut.of(app.service.get(jobs[what]))
    full_events = [e.model_dump(mode="json") for e in backend.last_events(job.id, events)]
    full_files = [(f.name, f.path, f.bytes, f.rows) for f in backend.result_files(job)]

    quick = quick_reads.show_job(_local(app), jobs[what], events=events)

    assert quick is not None
    assert quick[0] == job.model_dump(mode="json")
    assert json.dumps(quick[0]) == json.dumps(job.model_dump(mode="json"))
    assert quick[1] == full_events and json.dumps(quick[1]) == json.dumps(full_events)
    assert quick[2] == full_files


def _cli(args: list[str], data_dir: Path, *, full: bool) -> str:
    """``batchyard ARGS`` in this process; ``full`` forces the full path (another BATCHYARD_* setting does)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(data_dir), COLUMNS="160")
    if full:
        env["BATCHYARD_AUTO_MIGRATE"] = "true"
    done = typer.testing.CliRunner().invoke(cli_app, args, env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["jobs", "list", "--json"],
        ["jobs", "list", "-s", "active", "-n", "2"],
        ["jobs", "list", "--status", "running,paused", "--handler", "sleep", "--json"],
        ["jobs", "list", "--project", "alpha", "--owner", "someone"],
        ["jobs", "list", "-q", "march"],
        ["jobs", "list", "-q", "no such job"],
    ],
)
def test_jobs_list_prints_the_same_either_way(
    corpus: tuple[Batchyard, dict[str, str]], frozen: float, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    app, _ = corpus
    full = _cli(args, app.settings.data_dir, full=True)
    monkeypatch.setattr("batchyard.cli.backends.open_backend", _no_full_path)

    quick = _cli(args, app.settings.data_dir, full=False)

    assert quick == full


@pytest.mark.parametrize(
    "what", ["completed", "partly_failed", "failed", "cancelled", "paused", "scheduled", "running"]
)
@pytest.mark.parametrize("json_output", [False, True])
def test_jobs_show_prints_the_same_either_way(
    corpus: tuple[Batchyard, dict[str, str]],
    frozen: float,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    json_output: bool,
) -> None:
    app, jobs = corpus
    args = ["jobs", "show", jobs[what], *(["--json"] if json_output else [])]
    full = _cli(args, app.settings.data_dir, full=True)
    monkeypatch.setattr("batchyard.cli.backends.open_backend", _no_full_path)

    quick = _cli(args, app.settings.data_dir, full=False)

    assert quick == full
    if not json_output and what == "running":
        assert "k5" in quick and "Now" in quick  # the running items' current step is drawn


def _no_full_path(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("took the full path")


# -- when the full path answers -----------------------------------------------------------------------------------


def test_a_missing_database_or_job_takes_the_full_path(
    tmp_path: Path, corpus: tuple[Batchyard, dict[str, str]]
) -> None:
    missing = quick_reads.local_sqlite(tmp_path / "nothing here", None, environ={})
    assert missing is not None
    assert quick_reads.list_jobs(missing, JobFilter(), limit=20) is None
    assert not (tmp_path / "nothing here").exists()  # a read-only look creates nothing
    app, _ = corpus
    assert quick_reads.show_job(_local(app), "job_missing", events=10) is None  # the full path words the error


def test_a_schema_behind_the_newest_migration_takes_the_full_path(tmp_path: Path) -> None:
    app = Batchyard(Settings(data_dir=tmp_path), demo_handlers=True)
    try:
        app.submit("echo", [{"n": 1}])
        local = _local(app)
        assert quick_reads.list_jobs(local, JobFilter(), limit=20) is not None
        with app.store.db.write() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
        assert quick_reads.list_jobs(local, JobFilter(), limit=20) is None
        with app.store.db.write() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        assert quick_reads.list_jobs(local, JobFilter(), limit=20) is None
    finally:
        app.close()


def test_an_expired_lease_takes_the_full_path_which_hands_its_items_back(tmp_path: Path) -> None:
    app = Batchyard(Settings(data_dir=tmp_path), demo_handlers=True)
    try:
        job = app.submit("echo", [{"n": i} for i in range(4)])
        assert app.store.claims.claim_items("gone", {"echo": 10}, 0.05) is not None  # then nobody runs them
        time.sleep(0.2)
        assert quick_reads.show_job(_local(app), job.id, events=10) is None

        shown = json.loads(_cli(["jobs", "show", job.id, "--json"], tmp_path, full=False))

        assert (shown["counts"]["queued"], shown["counts"]["running"]) == (4, 0)
        assert shown["events"][-1]["type"] == "rescued"
        assert quick_reads.show_job(_local(app), job.id, events=10) is not None  # nothing left to rescue
    finally:
        app.close()


def test_other_settings_postgresql_and_unusual_urls_take_the_full_path(tmp_path: Path) -> None:
    assert quick_reads.local_sqlite(tmp_path, None, environ={"BATCHYARD_WORKER_STALE_SECONDS": "5"}) is None
    assert quick_reads.local_sqlite(tmp_path, None, environ={"batchyard_data_dir": "/elsewhere"}) is None
    assert quick_reads.local_sqlite(tmp_path, "postgresql://u@h/db", environ={}) is None
    assert quick_reads.local_sqlite(tmp_path, "sqlite:///x.db?mode=ro", environ={}) is None
    assert quick_reads.local_sqlite(tmp_path, "sqlite://", environ={}) is None
    known = {"BATCHYARD_DATA_DIR": "d", "BATCHYARD_DATABASE_URL": "", "BATCHYARD_URL": "", "BATCHYARD_API_KEY": "k"}
    assert quick_reads.local_sqlite(tmp_path, None, environ=known) is not None
