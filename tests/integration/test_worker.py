"""The worker end to end on SQLite and PostgreSQL: retries, timeouts, cancel, pause, thresholds, artifacts."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import zipfile
from typing import Any

import pytest

from batchyard import Batchyard, ItemContext, ItemError, PermanentError
from batchyard.app import InProcessWorker
from batchyard.core.records import CompletionReport

from ..waits import wait_until
from .helpers import assert_counters_match_items, running_worker, wait_finished, wait_store_clock_past


def test_small_batch_runs_to_completed_with_result_files(app: Batchyard) -> None:
    job = app.submit("echo", [{"custom_id": f"k{i}", "n": i} for i in range(10)])
    with running_worker(app):
        view = wait_finished(app, job.id, timeout=20)
    assert (view.job.status, view.job.succeeded) == ("completed", 10)
    assert [r.result for r in job.results()] == [{"custom_id": f"k{i}", "n": i} for i in range(10)]
    files = view.job.result_files
    assert files["results.jsonl"]["rows"] == 10 and files["errors.jsonl"]["rows"] == 0
    out = job.download(app.settings.data_dir / "out")
    assert sorted(p.name for p in out) == ["errors.jsonl", "results.csv", "results.jsonl"]
    types = [e.type for e in app.store.jobs.list_events(job.id)]
    assert types == ["created", "started", "finalizing", "completed"]
    assert_counters_match_items(app, job.id)


def test_wait_processes_in_process_without_a_worker(app: Batchyard) -> None:
    view = app.submit("echo", [{"n": i} for i in range(50)]).wait(timeout=20)
    assert (view.job.status, view.job.succeeded) == ("completed", 50)
    assert view.items_per_second is not None and view.items_per_second > 0


def test_wait_without_a_worker_processes_that_job_only(app: Batchyard) -> None:
    first = app.submit("echo", [{"n": i} for i in range(20)])
    second = app.submit("echo", [{"n": i} for i in range(20)])

    view = second.wait(timeout=20)

    assert (view.job.status, view.job.succeeded) == ("completed", 20)
    other = first.refresh().job
    assert (other.status, other.done, other.running) == ("queued", 0, 0)
    workers = app.store.workers.list_workers()
    assert [w.jobs for w in workers] == [[second.id]]  # registered as limited to that job


def test_a_worker_limited_to_a_job_does_not_serve_its_handler(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": 1}])
    app.store.workers.register_worker("w-wait", "host", 1, ["echo"], 4, jobs=[job.id])
    app.store.workers.register_worker("w-any", "host", 2, ["sleep"], 4)

    assert not app.service.has_live_worker_for("echo")
    assert app.service.has_live_worker_for("echo", job.id)
    assert not app.service.has_live_worker_for("echo", "job_other")
    assert app.service.has_live_worker_for("sleep") and app.service.has_live_worker_for("sleep", job.id)
    other = app.submit("echo", [{"n": 2}])
    assert app.store.claims.claim_items("w-wait", {"echo": 4}, 30, job_ids=[other.id]) is not None
    assert app.store.claims.claim_items("w-wait", {"echo": 4}, 30, job_ids=[other.id]) is None
    batch = app.store.claims.claim_items("w-wait", {"echo": 4}, 30, job_ids=[job.id])
    assert batch is not None and batch.job.id == job.id


def test_retries_with_backoff_until_success(app: Batchyard) -> None:
    attempts: dict[str, list[int]] = {}

    @app.handler("shaky")
    def shaky(item: dict[str, Any], ctx: ItemContext) -> dict[str, int]:
        attempts.setdefault(ctx.key, []).append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt} failed")
        return {"attempt": ctx.attempt}

    job = app.submit("shaky", [{"n": i} for i in range(5)], max_attempts=3)
    with running_worker(app):
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 5, 0)
    assert all(a == [1, 2, 3] for a in attempts.values())
    assert {i.attempts for i in job.items()} == {3}
    assert_counters_match_items(app, job.id)


def test_failure_after_max_attempts_keeps_last_error(app: Batchyard) -> None:
    @app.handler("broken")
    def broken(item: Any, ctx: ItemContext) -> None:
        raise ValueError(f"bad value on attempt {ctx.attempt}")

    @app.handler("refuses")
    async def refuses(item: Any, ctx: ItemContext) -> None:
        raise PermanentError("upstream said 400", code="bad_request")

    job = app.submit("broken", [{"n": 1}], max_attempts=2)
    final = app.submit("refuses", [{"n": 1}], max_attempts=5)
    with running_worker(app):
        view = wait_finished(app, job.id)
        final_view = wait_finished(app, final.id)
    assert (view.job.status, view.job.failed) == ("completed", 1)
    [item] = list(job.errors())
    assert item.attempts == 2 and item.error is not None
    assert item.error["type"] == "ValueError" and item.error["message"] == "bad value on attempt 2"
    assert "Traceback" in item.error["traceback"] and "bad value" in item.error["traceback"]
    [refused] = list(final.errors())
    assert refused.attempts == 1 and refused.error is not None  # not retried
    assert (refused.error["code"], refused.error["retryable"]) == ("bad_request", False)
    assert final_view.job.result_files["errors.jsonl"]["rows"] == 1


def test_timeouts_for_async_and_sync_handlers(app: Batchyard) -> None:
    saw_cancelled = threading.Event()

    @app.handler("slow_async", timeout=0.2)
    async def slow_async(item: Any, ctx: ItemContext) -> None:
        await asyncio.sleep(30)

    @app.handler("slow_sync", timeout=0.2)
    def slow_sync(item: Any, ctx: ItemContext) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ctx.cancelled:
                saw_cancelled.set()
                return
            time.sleep(0.01)

    a = app.submit("slow_async", [{"n": 1}], max_attempts=2)
    s = app.submit("slow_sync", [{"n": 1}], max_attempts=1)
    with running_worker(app):
        va = wait_finished(app, a.id)
        vs = wait_finished(app, s.id)
    for view, job, attempts in ((va, a, 2), (vs, s, 1)):
        assert view.job.failed == 1
        [item] = list(job.errors())
        assert item.error is not None and item.error["type"] == "Timeout" and item.attempts == attempts
    assert saw_cancelled.wait(5), "a sync handler sees ctx.cancelled once its item timed out"


def test_cancel_stops_running_items(app: Batchyard) -> None:
    started = threading.Event()
    sync_saw_cancel = threading.Event()

    @app.handler("forever")
    async def forever(item: Any, ctx: ItemContext) -> None:
        started.set()
        await asyncio.sleep(60)

    @app.handler("polite")
    def polite(item: Any, ctx: ItemContext) -> None:
        while True:
            time.sleep(0.01)
            if ctx.cancelled:
                sync_saw_cancel.set()
                ctx.check_cancelled()

    job = app.submit("forever", [{"n": i} for i in range(20)])
    sjob = app.submit("polite", [{"n": i} for i in range(3)])
    with running_worker(app, concurrency=4):
        assert started.wait(10)
        wait_until(lambda: app.store.jobs.get_job(sjob.id).running > 0, what="sync items running")
        view = app.service.cancel(job.id)
        assert view.job.status == "cancelling" and view.job.running > 0
        app.service.cancel(sjob.id)
        final = wait_finished(app, job.id)
        sfinal = wait_finished(app, sjob.id)
    assert (final.job.status, final.job.cancelled, final.job.succeeded) == ("cancelled", 20, 0)
    assert (sfinal.job.status, sfinal.job.cancelled) == ("cancelled", 3)
    assert sync_saw_cancel.is_set()
    for j in (job, sjob):
        assert_counters_match_items(app, j.id)


def test_pause_lets_in_flight_finish_and_resume_completes(app: Batchyard) -> None:
    gate = threading.Event()
    ran: list[str] = []

    @app.handler("gated", concurrency=2)
    def gated(item: Any, ctx: ItemContext) -> str:
        gate.wait(10)
        ran.append(ctx.key)
        return ctx.key

    job = app.submit("gated", [{"n": i} for i in range(10)])
    with running_worker(app) as runner:

        def pause_seen() -> bool:
            control = runner.worker.controls.get(job.id)
            return control is not None and control.paused

        wait_until(lambda: app.store.jobs.get_job(job.id).running > 0, what="items running")
        app.service.pause(job.id)
        wait_until(pause_seen, what="the worker's control poll to see the pause")
        gate.set()
        wait_until(lambda: app.store.jobs.get_job(job.id).running == 0, what="in-flight items to finish")
        paused = app.store.jobs.get_job(job.id)
        assert paused.status == "paused" and paused.succeeded == 2 and paused.queued == 8
        time.sleep(0.3)  # a stretch of time in which nothing may happen: no wait can show an absence
        assert app.store.jobs.get_job(job.id).succeeded == 2  # nothing new starts while paused
        app.service.resume(job.id)
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded) == ("completed", 10)
    assert sorted(ran, key=int) == [str(i) for i in range(1, 11)]
    assert {i.attempts for i in job.items()} == {1}  # released items did not spend an attempt
    assert_counters_match_items(app, job.id)


def test_failure_threshold_fails_the_job(app: Batchyard) -> None:
    @app.handler("always_fails", concurrency=1)
    def always_fails(item: Any, ctx: ItemContext) -> None:
        raise ItemError("nope", retryable=False)

    job = app.submit("always_fails", [{"n": i} for i in range(200)], max_failures=3)
    with running_worker(app):
        view = wait_finished(app, job.id)
    assert view.job.status == "failed" and view.job.error is not None
    assert view.job.error["code"] == "failure_threshold"
    assert view.job.failed >= 4 and view.job.cancelled > 0 and view.job.succeeded == 0
    assert view.job.failed + view.job.cancelled == 200
    assert_counters_match_items(app, job.id)


def test_artifacts_usage_and_cost(app: Batchyard) -> None:
    @app.handler("render")
    def render(item: dict[str, Any], ctx: ItemContext) -> dict[str, bool]:
        ctx.save_artifact(f"{ctx.key}.txt", f"page {item['n']}")
        ctx.add_usage(cost=0.5, pages=2)
        return {"ok": True}

    job = app.submit("render", [{"n": i} for i in range(4)])
    view = job.wait(timeout=20)
    assert view.job.cost == 2.0 and view.job.usage == {"pages": 8}
    assert view.job.result_files["artifacts.zip"]["rows"] == 4
    [zpath] = [p for p in job.download(app.settings.data_dir / "dl") if p.name == "artifacts.zip"]
    with zipfile.ZipFile(io.BytesIO(zpath.read_bytes())) as z:
        assert sorted(z.namelist()) == ["1.txt", "2.txt", "3.txt", "4.txt"]
        assert z.read("3.txt") == b"page 2"
    csv_text = (app.settings.data_dir / "dl" / "results.csv").read_text()
    assert csv_text.splitlines()[0].startswith("key,status,attempts,duration_ms,error_type,error_message,result.ok")
    assert app.store.items.get_item(job.id, "1").usage == {"pages": 2}


def test_a_database_outage_during_flushes_loses_nothing(app: Batchyard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Completions that fail to reach the database stay with the worker and are written on the next try."""
    from batchyard.errors import StoreUnavailable

    real = app.store.claims.complete_items
    failures = {"left": 3}

    def flaky_complete(*args: Any, **kwargs: Any) -> CompletionReport:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StoreUnavailable("database unavailable: connection refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(app.store.claims, "complete_items", flaky_complete)
    job = app.submit("echo", [{"n": i} for i in range(300)])
    with running_worker(app):
        view = wait_finished(app, job.id, timeout=60)
    assert failures["left"] == 0
    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 300, 0)
    assert {i.attempts for i in job.items()} == {1}  # nothing ran twice
    assert_counters_match_items(app, job.id)


def test_jobs_dispatched_while_a_status_check_is_out_are_never_cancelled(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control poll asks about the jobs it runs; a job dispatched while the answer is on its way is not in
    the answer, and that must not read as "cancelled" (it once cancelled items of healthy jobs)."""
    real = app.store.claims.job_statuses

    def slow_answer(job_ids: list[str]) -> dict[str, str]:
        answer = real(job_ids)
        time.sleep(0.4)  # new jobs get dispatched meanwhile
        return answer

    monkeypatch.setattr(app.store.claims, "job_statuses", slow_answer)

    @app.handler("short_nap", concurrency=32)
    async def short_nap(item: Any, ctx: ItemContext) -> int:
        await asyncio.sleep(0.05)
        return 1

    jobs = []
    with running_worker(app):
        for _ in range(8):  # each runs ~0.3 s and the next starts 0.2 s later: every answer misses one
            jobs.append(app.submit("short_nap", [{"n": i} for i in range(200)]))
            time.sleep(0.2)
        views = [wait_finished(app, job.id, timeout=60) for job in jobs]
    assert [(v.job.status, v.job.succeeded, v.job.cancelled) for v in views] == [("completed", 200, 0)] * 8
    for job in jobs:
        assert_counters_match_items(app, job.id)


def test_a_stale_cancelled_outcome_sends_the_item_back_instead(app: Batchyard) -> None:
    """Only a stopping job's items end cancelled, whatever a worker reports: the store has the last word."""
    from batchyard.core.records import Outcome

    job = app.submit("echo", [{"n": 1}, {"n": 2}])
    batch = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert batch is not None
    outcomes = [
        Outcome(job.id, item.seq, batch.lease_token, "cancelled", finished_at=time.time()) for item in batch.items
    ]
    assert app.store.claims.complete_items(outcomes, [batch.lease_token]).accepted == 2
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.queued, record.cancelled) == ("running", 2, 0)
    assert {i.attempts for i in job.items()} == {0}  # not counted
    with running_worker(app):
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded, view.job.cancelled) == ("completed", 2, 0)
    assert_counters_match_items(app, job.id)


def test_a_handler_raising_item_cancelled_on_its_own_is_a_failure(app: Batchyard) -> None:
    from batchyard.errors import ItemCancelled

    @app.handler("confused")
    def confused(item: Any, ctx: ItemContext) -> None:
        raise ItemCancelled("nobody asked for this")

    job = app.submit("confused", [{"n": 1}], max_attempts=2)
    with running_worker(app):
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.failed, view.job.cancelled) == ("completed", 1, 0)
    [item] = list(job.errors())
    assert item.attempts == 2 and item.error is not None and item.error["type"] == "ItemCancelled"


def test_a_writer_that_died_while_finalizing_is_replaced_within_a_lease(app: Batchyard) -> None:
    """kill -9 during result-file writing once left the job finalizing for minutes, and its temporary files
    forever: the files lease is the worker lease (extended while writing), and the next writer cleans up."""
    import os

    from batchyard.core.records import Outcome
    from batchyard.data.blobs import TEMP_SUFFIX, job_prefix
    from batchyard.services.maintenance import Maintenance
    from batchyard.store.schema import jobs

    job = app.submit("echo", [{"n": 1}, {"n": 2}])
    batch = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert batch is not None
    app.store.claims.complete_items(
        [
            Outcome(job.id, i.seq, batch.lease_token, "succeeded", result="{}", finished_at=time.time())
            for i in batch.items
        ],
        [batch.lease_token],
    )
    assert app.store.jobs.get_job(job.id).status == "finalizing"
    assert app.store.upkeep.claim_files(job.id, 0.3)  # a writer takes the job ... and dies mid-write
    folder = app.storage.path(job_prefix(job.id))
    folder.mkdir(parents=True, exist_ok=True)
    left = folder / f".results.jsonl.999-dead{TEMP_SUFFIX}"
    left.write_text("half a fi")
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    maintenance = Maintenance(app.store, app.storage, app.settings)
    assert maintenance.write_pending_files() == 0  # its lease still holds
    wait_store_clock_past(app, jobs.c.files_lease_until, jobs.c.id == job.id, what="the dead writer's lease to end")
    assert maintenance.write_pending_files() == 1
    assert app.store.jobs.get_job(job.id).status == "completed"
    assert not left.exists()
    assert not list(folder.rglob(f"*{TEMP_SUFFIX}"))


def _lane_threads(handler: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"batchyard-{handler}-") and t.is_alive()]


def test_a_stopped_worker_leaves_no_lane_behind(app: Batchyard) -> None:
    """Every lane ends with its worker: a sync lane thread, or an async lane task (``stop`` would wait for ever
    for one that never gets its stop sentinel; a thread left waiting leaks at every stop)."""

    @app.handler("lane_sync")
    def lane_sync(item: Any, ctx: ItemContext) -> Any:
        return item

    @app.handler("lane_async")
    async def lane_async(item: Any, ctx: ItemContext) -> Any:
        return item

    for round_ in range(3):
        jobs = [app.submit(name, [{"n": i} for i in range(20)]) for name in ("lane_sync", "lane_async")]
        with running_worker(app, handlers=["lane_sync", "lane_async"]) as runner:
            for job in jobs:
                wait_finished(app, job.id)
        assert runner.error is None
        wait_until(lambda: not _lane_threads("lane_sync"), timeout=10, what=f"the sync lanes to end (round {round_})")


def test_a_stop_past_the_grace_period_with_async_items_in_flight_ends(app: Batchyard) -> None:
    """Items still running when the grace period ends are released and their lanes end: ``stop`` returns."""
    app.settings.shutdown_grace_seconds = 0.2
    started = threading.Event()

    @app.handler("slow_async")
    async def slow_async(item: Any, ctx: ItemContext) -> Any:
        started.set()
        await asyncio.sleep(60)
        return item

    @app.handler("slow_sync")
    def slow_sync(item: Any, ctx: ItemContext) -> Any:
        time.sleep(1.0)
        return item

    job = app.submit("slow_async", [{"n": i} for i in range(8)])
    other = app.submit("slow_sync", [{"n": i} for i in range(8)])
    runner = InProcessWorker(app, handlers=["slow_async", "slow_sync"])
    runner.start()
    assert started.wait(30)
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            runner.stop()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    stopper = threading.Thread(target=stop, daemon=True)
    began = time.monotonic()
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive(), "the worker did not stop after its grace period"
    assert errors == []
    assert time.monotonic() - began < 15
    record = app.store.jobs.get_job(job.id)
    assert record.running == 0 and record.queued + record.succeeded == 8  # released back, nothing lost
    assert app.store.jobs.get_job(other.id).running == 0
    wait_until(lambda: not _lane_threads("slow_sync"), timeout=10, what="the abandoned sync lanes to end")
