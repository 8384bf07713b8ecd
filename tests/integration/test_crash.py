"""Failure: a worker killed with SIGKILL mid-batch, and a graceful SIGTERM, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import text

from batchyard import Batchyard, Settings

from ..waits import wait_until
from .helpers import assert_counters_match_items, wait_finished

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def same_handlers(app: Batchyard) -> None:
    """The test process knows the worker processes' handlers (to submit, and to finish in-process)."""
    from . import workerapp

    for spec in workerapp.app.registry.specs():
        app.registry.register(spec.name, spec.function, concurrency=spec.concurrency)


def _start_worker(
    settings: Settings,
    *handlers: str,
    lease: float = 1.5,
    poll_ms: int = 50,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "BATCHYARD_DATABASE_URL": str(settings.database_url),
        "BATCHYARD_DATA_DIR": str(settings.data_dir),
        "BATCHYARD_LEASE_SECONDS": str(lease),
        "BATCHYARD_POLL_INTERVAL_MS": str(poll_ms),
        "BATCHYARD_MAINTENANCE_INTERVAL_MS": "200",
        "BATCHYARD_SHUTDOWN_GRACE_SECONDS": "10",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "tests.integration.workerapp"]
    if handlers:
        args.append(",".join(handlers))
    log_path = settings.data_dir / f"worker-{time.monotonic_ns()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_kill_9_mid_batch_loses_nothing(app: Batchyard, settings: Settings, same_handlers: None) -> None:
    job = app.submit("nap", [{"n": i, "ms": 40} for i in range(1500)], max_attempts=5)
    # Both start together: a survivor started later could find the job already finished on a fast machine.
    victim = _start_worker(settings)
    survivor: subprocess.Popen[bytes] | None = _start_worker(settings)
    try:
        wait_until(lambda: len(app.service.live_workers()) >= 2, timeout=30, what="both workers")
        wait_until(lambda: app.store.jobs.get_job(job.id).succeeded >= 200, timeout=60, what="progress")
        assert app.store.jobs.get_job(job.id).running > 0
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        view = wait_finished(app, job.id, timeout=120)
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert view.job.status == "completed"
    assert (view.job.succeeded, view.job.failed, view.job.cancelled) == (1500, 0, 0)
    assert_counters_match_items(app, job.id)
    items = list(job.items())
    assert len(items) == 1500 and {i.status for i in items} == {"succeeded"}
    assert any(i.rescues > 0 for i in items), "the killed worker's items were rescued and run again"
    assert {i.attempts for i in items} == {1}  # ...without spending an attempt
    assert sum(1 for _ in job.results()) == 1500
    assert any(e.type == "rescued" for e in app.store.jobs.list_events(job.id))


class Supervisor:
    """Keeps ``n`` worker processes running, as systemd or Kubernetes would: a dead one is started again."""

    def __init__(self, settings: Settings, n: int, *handlers: str, **env: str) -> None:
        self.settings, self.handlers, self.env = settings, handlers, env
        self.procs = [self._start() for _ in range(n)]
        self.deaths = 0

    def _start(self) -> subprocess.Popen[bytes]:
        return _start_worker(self.settings, *self.handlers, extra_env=self.env)

    def restart_dead(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.deaths += 1
                self.procs[i] = self._start()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_a_kill_loop_spends_no_attempts(app: Batchyard, settings: Settings, same_handlers: None) -> None:
    """Deploys, OOM kills and preemptions kill workers mid-batch. The items they held did nothing wrong: with
    max_attempts=1 every one of them must still succeed (a rescue is not an attempt), nothing lost or doubled."""
    job = app.submit("nap", [{"n": i, "ms": 100} for i in range(3000)], max_attempts=1)
    fleet = Supervisor(settings, 3)
    kills = 0
    try:
        deadline = time.monotonic() + 180
        while not app.service.get(job.id).finished:
            assert time.monotonic() < deadline, "the job did not finish under the kill loop"
            time.sleep(0.8)  # the pace of the kills
            if kills < 8 and app.store.jobs.get_job(job.id).running > 0:
                victim = fleet.procs[kills % 3]
                if victim.poll() is None:
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(10)
                    kills += 1
            fleet.restart_dead()
    finally:
        fleet.stop()
    view = app.service.get(job.id)
    assert kills >= 5
    assert (view.job.status, view.job.succeeded, view.job.failed, view.job.cancelled) == ("completed", 3000, 0, 0)
    items = list(job.items())
    assert {i.attempts for i in items} == {1}  # every item ran to success on its one attempt
    assert sum(1 for i in items if i.rescues) > 0, "the kills landed on items in flight"
    assert sum(1 for _ in job.results()) == 3000
    assert_counters_match_items(app, job.id)


@pytest.mark.slow
def test_one_poisonous_item_among_a_thousand_is_found_and_set_aside(
    app: Batchyard, settings: Settings, same_handlers: None
) -> None:
    """An item that kills its worker every time: narrowed down by halving groups of suspects, set aside as
    ``poison`` after BATCHYARD_MAX_RESCUES crashes, while every one of its neighbours succeeds."""
    items = [{"n": i, "ms": 20} for i in range(1000)]
    items[437]["poison"] = True
    job = app.submit("poisonous", items, max_attempts=1)
    fleet = Supervisor(settings, 2, "poisonous")
    try:
        deadline = time.monotonic() + 240
        while not app.service.get(job.id).finished:
            assert time.monotonic() < deadline, f"not found after {fleet.deaths} crashes"
            time.sleep(0.2)  # the supervisor's pace: a dead worker is started again this soon
            fleet.restart_dead()
    finally:
        fleet.stop()
    view = app.service.get(job.id)
    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 999, 1)
    [poison] = list(job.errors())
    assert poison.seq == 437 and poison.error is not None and poison.error["code"] == "poison"
    assert fleet.deaths == settings.max_rescues  # each crash moved the search on; none was wasted
    assert_counters_match_items(app, job.id)
    assert any("poison" in (e.message or "") for e in app.store.jobs.list_events(job.id))


@pytest.mark.slow
def test_sigterm_is_graceful(app: Batchyard, settings: Settings, same_handlers: None) -> None:
    job = app.submit("nap_sync", [{"n": i, "ms": 300} for i in range(40)])
    worker = _start_worker(settings, "nap_sync", lease=30)
    try:
        wait_until(lambda: app.store.jobs.get_job(job.id).succeeded >= 4, timeout=60, what="progress")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    stopped = app.store.jobs.get_job(job.id)
    # In-flight items finished; the prefetched ones went back to the queue at once (no lease to wait out).
    assert stopped.running == 0 and stopped.failed == 0 and stopped.succeeded + stopped.queued == 40
    assert all(i.attempts <= 1 for i in job.items())
    [record] = [w for w in app.store.workers.list_workers() if w.pid == worker.pid]
    assert record.status == "stopped"
    view = job.wait(timeout=60)
    assert (view.job.status, view.job.succeeded) == ("completed", 40)
    assert_counters_match_items(app, job.id)


def _listening_and_idle(app: Batchyard) -> bool:
    """PostgreSQL's own view of the worker: its LISTEN went through and none of its transactions is open (it
    claims once more as soon as it listens, then waits for a notification or its 30 s poll)."""
    with app.store.db.read() as conn:
        sessions = conn.execute(
            text(
                "SELECT state, query FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).all()
    listening = any((query or "").startswith("LISTEN ") for _, query in sessions)
    return listening and all(state == "idle" for state, _ in sessions)


@pytest.mark.postgres
def test_postgres_notify_wakes_an_idle_worker_at_once(tmp_path: Path, postgres_url: str) -> None:
    """A worker polling only every 30 s still starts a new job at once: LISTEN/NOTIFY wakes it."""
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    app = Batchyard(settings)
    from . import workerapp

    for spec in workerapp.app.registry.specs():
        app.registry.register(spec.name, spec.function)
    env_worker = _start_worker(settings, "nap", lease=30, poll_ms=30_000)
    try:
        wait_until(lambda: len(app.service.live_workers()) == 1, timeout=30, what="worker registered")
        wait_until(lambda: _listening_and_idle(app), timeout=30, what="the worker to LISTEN and go idle")
        started = time.monotonic()
        job = app.submit("nap", [{"n": i, "ms": 1} for i in range(10)])
        view = wait_finished(app, job.id, timeout=20)
        elapsed = time.monotonic() - started
    finally:
        env_worker.send_signal(signal.SIGTERM)
        env_worker.wait(20)
        app.close()
    assert view.job.status == "completed"
    assert elapsed < 10, f"took {elapsed:.1f}s: the worker waited for its poll instead of the notification"
