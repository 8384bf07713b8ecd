"""The app's own rules on SQLite and PostgreSQL: an ``admit`` hook or a handler pauses its job (PauseJob) or skips
an item (SkipItem), and a cancelled or expired job runs again (retry, ``rerun``)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from typing import Any

import pytest

from batchyard import Batchyard, ItemContext, PauseJob, SkipItem
from batchyard.errors import IllegalTransition, InvalidRequest
from batchyard.services.maintenance import Maintenance
from batchyard.store.schema import jobs
from batchyard.wire import JobOut

from ..waits import wait_until
from .helpers import assert_counters_match_items, running_worker, wait_finished, wait_store_clock_past

MESSAGE = "Token balance exhausted: 0 of 1,200 left"


class Balance:
    """The app's own budget, kept by the app (here in memory): one token per item."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.lock = threading.Lock()
        self.admitted = 0
        self.refused = 0

    def take(self) -> None:
        with self.lock:
            if self.tokens <= 0:
                self.refused += 1
                raise PauseJob(MESSAGE)
            self.tokens -= 1
            self.admitted += 1


def _paused_and_still(app: Batchyard, job_id: str) -> bool:
    job = app.store.jobs.get_job(job_id)
    return job.status == "paused" and job.running == 0


# (handler is async, admit is async): every pairing, since the hook runs in the handler's flavour.
FLAVOURS = [(False, False), (True, True), (False, True), (True, False)]


@pytest.mark.parametrize(("async_handler", "async_admit"), FLAVOURS, ids=lambda v: "async" if v else "sync")
def test_an_admit_hook_pauses_the_job_after_exactly_n_items_and_resume_finishes_it(
    app: Batchyard, async_handler: bool, async_admit: bool
) -> None:
    n, total = 7, 30
    balance = Balance(n)
    started: list[str] = []

    def check(item: dict[str, Any], ctx: ItemContext) -> None:
        balance.take()

    async def check_async(item: dict[str, Any], ctx: ItemContext) -> None:
        balance.take()

    def write(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        started.append(ctx.key)
        return {"article": item["n"]}

    async def write_async(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return write(item, ctx)

    app.handler("articles", concurrency=4, admit=check_async if async_admit else check)(
        write_async if async_handler else write
    )
    job = app.submit("articles", [{"custom_id": f"a{i}", "n": i} for i in range(total)])
    with running_worker(app):
        wait_until(lambda: _paused_and_still(app, job.id), what="the admit hook to pause the job")
        paused = app.store.jobs.get_job(job.id)
        assert len(started) == n  # no item beyond N started its handler
        assert (paused.succeeded, paused.queued, paused.running, paused.failed) == (n, total - n, 0, 0)
        assert balance.refused >= 1
        # The refused items went back untouched: not one attempt counted.
        queued = [i for i in job.items() if i.status == "queued"]
        assert len(queued) == total - n and {i.attempts for i in queued} == {0}
        assert all(i.error is None for i in queued)
        out = JobOut.of(app.service.get(job.id)).model_dump(mode="json")
        assert (out["status"], out["status_reason"], out["status_message"]) == ("paused", "paused_by_handler", MESSAGE)
        assert out["eta_seconds"] is None
        paused_events = [e for e in app.store.jobs.list_events(job.id) if e.type == "paused"]
        assert len(paused_events) == 1  # one pause, however many items the hook refused
        event = paused_events[0]
        assert (event.actor, event.message) == ("articles", MESSAGE)
        assert event.data["reason"] == "paused_by_handler" and event.data["message"] == MESSAGE
        time.sleep(0.3)  # a stretch of time in which nothing may happen: no wait can show an absence
        assert len(started) == n and app.store.jobs.get_job(job.id).status == "paused"

        with balance.lock:  # the user tops up
            balance.tokens = total
        resumed = app.service.resume(job.id).job
        assert (resumed.status, resumed.status_reason, resumed.status_message) == ("running", None, None)
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded, view.job.skipped) == ("completed", total, 0)
    assert view.job.status_reason is None
    assert sorted(started) == sorted(f"a{i}" for i in range(total))  # each ran once
    assert {i.attempts for i in job.items()} == {1}
    assert [e.type for e in app.store.jobs.list_events(job.id)] == [
        "created",
        "started",
        "paused",
        "resumed",
        "finalizing",
        "completed",
    ]
    assert_counters_match_items(app, job.id)


@pytest.mark.parametrize("async_handler", [False, True], ids=["sync", "async"])
def test_pause_job_raised_by_the_handler_itself(app: Batchyard, async_handler: bool) -> None:
    topped_up = threading.Event()

    def work(item: dict[str, Any], ctx: ItemContext) -> int:
        if item["n"] >= 3 and not topped_up.is_set():
            raise PauseJob(f"article limit reached at {item['n']}")
        return int(item["n"])

    async def work_async(item: dict[str, Any], ctx: ItemContext) -> int:
        return work(item, ctx)

    app.handler("limited", concurrency=1)(work_async if async_handler else work)
    job = app.submit("limited", [{"custom_id": f"l{i}", "n": i} for i in range(6)])
    with running_worker(app):
        wait_until(lambda: _paused_and_still(app, job.id), what="the handler to pause the job")
        paused = app.store.jobs.get_job(job.id)
        assert (paused.succeeded, paused.queued) == (3, 3)
        assert (paused.status_reason, paused.status_message) == ("paused_by_handler", "article limit reached at 3")
        item3 = app.store.items.get_item(job.id, "l3")
        assert (item3.status, item3.attempts) == ("queued", 0)
        topped_up.set()
        app.service.resume(job.id)
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded) == ("completed", 6)
    assert [r.result for r in job.results()] == list(range(6))
    assert app.store.items.get_item(job.id, "l3").attempts == 1  # the pausing attempt was given back
    assert_counters_match_items(app, job.id)


def test_a_person_pausing_says_so_and_any_move_clears_the_reason(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": 1}], scheduled_at=time.time() + 3600)
    paused = app.service.pause(job.id, reason="waiting for the data team").job
    assert (paused.status_reason, paused.status_message) == ("paused_by_user", "waiting for the data team")
    event = app.store.jobs.list_events(job.id)[-1]
    assert event.type == "paused" and event.data == {"reason": "paused_by_user", "message": "waiting for the data team"}
    cancelled = app.service.cancel(job.id).job
    assert (cancelled.status, cancelled.status_reason, cancelled.status_message) == ("cancelled", None, None)


def test_skip_item_from_admit_and_handler_counts_as_skipped(app: Batchyard) -> None:
    def admit(item: dict[str, Any], ctx: ItemContext) -> None:
        if item.get("blocked"):
            raise SkipItem("recipient unsubscribed")

    @app.handler("mailer", concurrency=2, admit=admit)
    def mailer(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        if item["n"] % 3 == 0:
            raise SkipItem(f"no article for keyword {item['n']}")
        if item["n"] == 4:
            raise ValueError("broken")
        return {"sent": item["n"]}

    items = [{"custom_id": f"m{i}", "n": i, "blocked": i == 5} for i in range(8)]
    job = app.submit("mailer", items, max_attempts=1)
    with running_worker(app):
        view = wait_finished(app, job.id)
    record = view.job
    # 0, 3, 6 skipped by the handler, 5 by the admit hook; 4 failed; 1, 2, 7 succeeded
    assert (record.status, record.skipped, record.failed, record.succeeded) == ("completed", 4, 1, 3)
    assert record.done == record.total == 8
    out = JobOut.of(view).model_dump(mode="json")
    assert out["counts"]["skipped"] == 4 and out["percent"] == 100.0
    assert out["avg_item_seconds"] is not None
    by_key = {i.key: i for i in job.items()}
    assert {k for k, i in by_key.items() if i.status == "skipped"} == {"m0", "m3", "m5", "m6"}
    assert by_key["m5"].error is not None and by_key["m5"].error["message"] == "recipient unsubscribed"
    assert by_key["m3"].error is not None and by_key["m3"].error["code"] == "skipped"
    assert by_key["m3"].error["type"] == "SkipItem" and by_key["m3"].attempts == 1

    files = job.download(app.settings.data_dir / "out")
    by_name = {p.name: p for p in files}
    lines = [json.loads(line) for line in by_name["results.jsonl"].read_text().splitlines()]
    assert [(r["key"], r["status"]) for r in lines] == [
        ("m0", "skipped"),
        ("m1", "succeeded"),
        ("m2", "succeeded"),
        ("m3", "skipped"),
        ("m5", "skipped"),
        ("m6", "skipped"),
        ("m7", "succeeded"),
    ]
    assert lines[0]["message"] == "no article for keyword 0" and lines[0]["result"] is None
    assert lines[4]["message"] == "recipient unsubscribed"
    assert "message" not in lines[1]
    assert view.job.result_files["results.jsonl"]["rows"] == 7
    errors = [json.loads(line) for line in by_name["errors.jsonl"].read_text().splitlines()]
    assert [e["key"] for e in errors] == ["m4"]
    rows = list(csv.DictReader(io.StringIO(by_name["results.csv"].read_text())))
    skipped_rows = {r["key"]: r for r in rows if r["status"] == "skipped"}
    assert set(skipped_rows) == {"m0", "m3", "m5", "m6"}
    assert skipped_rows["m5"]["error_message"] == "recipient unsubscribed"
    assert skipped_rows["m5"]["error_type"] == "SkipItem"
    assert_counters_match_items(app, job.id)


def _cancel_midway(app: Batchyard, handler: str, total: int, release: threading.Event) -> str:
    """Submit ``total`` items of which the first 4 finish at once and the rest wait on ``release``; cancel
    the job once 4 succeeded and wait for its result files."""
    job = app.submit(handler, [{"custom_id": f"i{n}", "n": n} for n in range(total)])
    with running_worker(app):
        wait_until(lambda: app.store.jobs.get_job(job.id).succeeded == 4, what="the first 4 items to succeed")
        app.service.cancel(job.id)
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded, view.job.cancelled) == ("cancelled", 4, total - 4)
    return job.id


def _register_slow_after_four(app: Batchyard, release: threading.Event, runs: list[int]) -> None:
    @app.handler("slow_after_four", concurrency=2)
    async def slow_after_four(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        if item["n"] >= 4 and not release.is_set():
            await asyncio.sleep(60)  # interrupted by the cancel
        return {"n": item["n"], "run": len(runs)}


def test_a_cancelled_job_runs_again_to_completion_keeping_earlier_results(app: Batchyard) -> None:
    release = threading.Event()
    runs = [1]
    _register_slow_after_four(app, release, runs)
    job_id = _cancel_midway(app, "slow_after_four", 10, release)
    first_files = app.job(job_id).download(app.settings.data_dir / "first")
    first = [json.loads(line) for line in (first_files[0].parent / "results.jsonl").read_text().splitlines()]
    assert [(r["key"], r["result"]["run"]) for r in first] == [(f"i{n}", 1) for n in range(4)]

    release.set()
    runs.append(2)
    view, n = app.service.retry(job_id)
    assert n == 6
    assert view.job.status == "running" and view.job.queued == 6 and view.job.cancelled == 0
    assert view.job.result_files == {} and view.job.finished_at is None
    requeued = [i for i in app.job(job_id).items() if i.status == "queued"]
    assert len(requeued) == 6 and {i.attempts for i in requeued} == {0}  # attempts reset
    event = app.store.jobs.list_events(job_id)[-1]
    assert event.type == "rerun" and event.data["items"] == 6 and event.data["cancelled"] == 6
    assert event.data["previous_status"] == "cancelled"
    with running_worker(app):
        view = wait_finished(app, job_id)
    assert (view.job.status, view.job.succeeded, view.job.cancelled) == ("completed", 10, 0)
    files = app.job(job_id).download(app.settings.data_dir / "second")
    lines = [json.loads(line) for line in (files[0].parent / "results.jsonl").read_text().splitlines()]
    # Old results kept (run 1), new ones added (run 2): the fresh files hold both.
    assert [(r["key"], r["result"]["run"]) for r in lines] == [(f"i{n}", 1 if n < 4 else 2) for n in range(10)]
    assert view.job.result_files["results.jsonl"]["rows"] == 10
    assert [e.type for e in app.store.jobs.list_events(job_id)][-3:] == ["rerun", "finalizing", "completed"]
    assert_counters_match_items(app, job_id)


def test_only_failed_leaves_a_cancelled_jobs_cancelled_items_alone(app: Batchyard) -> None:
    attempts_seen: list[int] = []

    @app.handler("fails_once_then_waits", concurrency=1)
    async def fails_once_then_waits(item: dict[str, Any], ctx: ItemContext) -> int:
        attempts_seen.append(ctx.attempt)
        if item["n"] == 0 and ctx.attempt == 1 and len(attempts_seen) == 1:
            raise ValueError("first try fails")
        if item["n"] >= 1:
            await asyncio.sleep(60)
        return int(item["n"])

    job = app.submit("fails_once_then_waits", [{"n": n} for n in range(4)], max_attempts=1)
    with running_worker(app):
        wait_until(lambda: app.store.jobs.get_job(job.id).failed == 1, what="item 0 to fail")
        wait_until(lambda: len(attempts_seen) >= 2, what="item 1 to start")
        app.service.cancel(job.id)
        wait_finished(app, job.id)
        with pytest.raises(InvalidRequest, match="include: unknown item status 'succeeded'"):
            app.service.retry(job.id, include=["succeeded"])
        view, n = app.service.retry(job.id, include=["failed"])
        assert n == 1 and view.job.cancelled == 3
        reruns = [e for e in app.store.jobs.list_events(job.id) if e.type == "rerun"]
        assert [e.data for e in reruns] == [{"items": 1, "failed": 1, "previous_status": "cancelled"}]
        view = wait_finished(app, job.id)
    assert (view.job.status, view.job.succeeded, view.job.cancelled, view.job.failed) == ("completed", 1, 3, 0)
    with pytest.raises(IllegalTransition, match="has no failed items to retry"):
        app.service.retry(job.id, include=["failed"])
    assert_counters_match_items(app, job.id)


def test_an_expired_job_runs_again_with_a_fresh_window(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": n} for n in range(5)], expires_in_seconds=2.0)
    created = app.store.jobs.get_job(job.id)
    assert created.expires_at is not None
    window = created.expires_at - created.created_at
    wait_store_clock_past(app, jobs.c.expires_at, jobs.c.id == job.id, "the completion window to pass")
    maintenance = Maintenance(app.store, app.storage, app.settings)
    assert maintenance.expire_jobs() == 1
    maintenance.run_once()
    expired = app.service.get(job.id)
    assert (expired.job.status, expired.job.cancelled) == ("expired", 5) and expired.finished

    view, n = app.service.retry(job.id)
    assert n == 5
    assert view.job.status == "queued"  # it never started: it waits to start again
    assert view.job.error is None and view.job.expires_at is not None
    rerun_at = app.store.jobs.get_job(job.id).last_activity_at
    assert rerun_at is not None
    assert view.job.expires_at - rerun_at == pytest.approx(window, abs=0.01)  # a fresh window from the rerun
    assert app.store.jobs.list_events(job.id)[-1].type == "rerun"
    with running_worker(app):
        done = wait_finished(app, job.id)
    assert (done.job.status, done.job.succeeded) == ("completed", 5)
    assert_counters_match_items(app, job.id)
