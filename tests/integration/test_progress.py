"""What a job says about its progress: rate and ETA (one definition, core/rate.py), live workers, stale leases."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from batchyard import Batchyard, ItemContext
from batchyard.core.records import Outcome, ProgressReport
from batchyard.store.schema import item_progress, leases

from .helpers import wait_store_clock_past


def test_a_cancelled_jobs_rate_counts_processed_items_only(app: Batchyard) -> None:
    job = app.store.jobs.get_job(app.submit("echo", [{"n": i} for i in range(100)]).id)
    cancelled = dataclasses.replace(
        job, status="cancelled", queued=0, succeeded=25, failed=5, cancelled=70, started_at=100.0, finished_at=110.0
    )

    view = app.service.view(cancelled)

    assert view.items_per_second == pytest.approx(3.0)  # 30 processed in 10 s; the 70 cancelled are not work
    assert view.eta_seconds is None
    assert view.to_dict()["items_per_second"] == pytest.approx(3.0)


def test_a_job_that_speeds_up_gets_its_eta_from_the_recent_window(app: Batchyard) -> None:
    app.store.workers.register_worker("w1", "host", 1, ["echo"], 4)
    job = app.store.jobs.get_job(app.submit("echo", [{"n": i} for i in range(1000)]).id)
    now = time.time()
    running = dataclasses.replace(job, status="running", queued=300, succeeded=700, started_at=now - 600)
    # 100 items in the first 540 s, then 600 in the last 60 s: lifetime 1.2/s, lately 10/s.
    samples = [(now - 600, 0, 0, 0.0), (now - 60, 100, 0, 0.0), (now - 30, 400, 0, 0.0)]

    view = app.service.view(running, samples)

    assert view.workers_alive == 1
    assert view.items_per_second == pytest.approx(10.0, rel=0.05)
    assert view.eta_seconds == pytest.approx(30.0, rel=0.05)  # the lifetime average would say ~257 s


def test_no_eta_while_no_live_worker_takes_the_job(app: Batchyard) -> None:
    job = app.store.jobs.get_job(app.submit("echo", [{"n": i} for i in range(100)]).id)
    now = time.time()
    running = dataclasses.replace(job, status="running", queued=50, succeeded=50, started_at=now - 30)

    view = app.service.view(running, [(now - 20, 10, 0, 0.0)])

    assert view.workers_alive == 0
    assert view.items_per_second is not None and view.items_per_second > 0
    assert view.eta_seconds is None


def test_rescue_stale_hands_a_stopped_workers_items_back_once_the_lease_is_past(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(5)])
    app.store.workers.register_worker("w1", "host", 1, ["echo"], 4)
    assert app.store.claims.claim_items("w1", {"echo": 10}, 0.2) is not None
    app.store.workers.set_worker_status("w1", "stopped")  # it stopped without handing its items back
    assert app.service.rescue_stale() == 0  # the lease still holds
    assert job.refresh().job.running == 5

    wait_store_clock_past(app, leases.c.expires_at, leases.c.worker_id == "w1", "the lease to expire")
    assert app.service.rescue_stale() == 5

    view = job.refresh()
    assert (view.job.status, view.job.queued, view.job.running) == ("running", 5, 0)
    assert view.workers_alive == 0


# -- progress inside items (ctx.progress) ----------------------------------------------------------------------


def _report(job_id: str, seq: int, token: str, done: float, total: float | None, at: float) -> ProgressReport:
    return ProgressReport(job_id, seq, token, done, total, f"step {done:g}", at)


def test_running_items_progress_counts_only_under_their_lease_and_shows_the_latest_few(app: Batchyard) -> None:
    job = app.submit("echo", [{"custom_id": f"k{i}", "n": i} for i in range(10)])
    batch = app.store.claims.claim_items("w1", {"echo": 8}, 30)
    assert batch is not None and len(batch.items) == 8
    token = batch.lease_token
    now = time.time()
    app.store.progress.record([_report(job.id, seq, token, seq, 10, now + seq) for seq in range(8)])
    app.store.progress.record([_report(job.id, 9, "someone-else", 5, 10, now + 100)])  # not running: never shown
    app.store.progress.record([_report(job.id, 0, token, 4, 8, now + 50)])  # replaces item 0's report

    running = app.store.progress.running([job.id])[job.id]

    assert running.partial == pytest.approx(0.5 + sum(seq / 10 for seq in range(1, 8)))
    assert [(p.key, p.done, p.total) for p in running.current] == [
        ("k0", 4, 8), ("k7", 7, 10), ("k6", 6, 10), ("k5", 5, 10), ("k4", 4, 10)
    ]  # fmt: skip  # most recent first, 5 at most
    view = app.service.get(job.id)
    assert view.progress == running
    assert view.to_dict()["percent"] == pytest.approx(100 * running.partial / 10, abs=0.01)

    # The items end: their reports stop counting at once (the rows go with the next write or maintenance).
    app.store.claims.complete_items(
        [Outcome(job.id, it.seq, token, "succeeded", result="1", finished_at=now) for it in batch.items[:4]]
    )
    assert app.store.progress.running([job.id])[job.id].partial == pytest.approx(sum(s / 10 for s in range(4, 8)))
    assert app.store.progress.clear_stale() == 5  # four finished items and the other lease's report
    app.store.progress.record([], finished=[(job.id, 4)])
    assert [p.key for p in app.store.progress.running([job.id])[job.id].current] == ["k7", "k6", "k5"]


def test_progress_samples_and_the_rate_count_partial_progress(app: Batchyard) -> None:
    app.store.workers.register_worker("w1", "host", 1, ["echo"], 4)
    job = app.submit("echo", [{"custom_id": "only", "n": 1}])
    batch = app.store.claims.claim_items("w1", {"echo": 1}, 30)
    assert batch is not None
    app.store.progress.record([_report(job.id, 0, batch.lease_token, 25, 100, time.time())])

    assert app.store.upkeep.record_progress_samples(0.0) == 1

    [(_, done, failed, partial)] = app.store.jobs.recent_samples(job.id, 0)
    assert (done, failed, partial) == (0, 0, 0.25)
    view = app.service.get(job.id)
    assert view.to_dict()["percent"] == 25.0  # a one-item job a quarter done
    assert view.items_per_second is not None and view.items_per_second > 0
    assert view.eta_seconds is not None and view.eta_seconds > 0  # 0.75 of the item left
    app.store.jobs.cancel_job(job.id)
    app.store.claims.complete_items([Outcome(job.id, 0, batch.lease_token, "cancelled", finished_at=time.time())])
    assert app.service.get(job.id).progress.current == ()
    app.store.jobs.delete_job(job.id)
    with app.store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(item_progress)).scalar_one() == 0


def test_progress_reports_are_coalesced_into_a_few_writes_and_cleared_when_items_end(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    record = app.store.progress.record

    def counting(reports: Sequence[ProgressReport], finished: Sequence[tuple[str, int]] = ()) -> None:
        writes.append(len(reports))
        record(reports, finished)

    monkeypatch.setattr(app.store.progress, "record", counting)
    calls = 0

    @app.handler("chatty", concurrency=4)
    def chatty(item: dict[str, Any], ctx: ItemContext) -> int:
        nonlocal calls
        deadline = time.monotonic() + 0.6
        n = 0
        while time.monotonic() < deadline:
            n += 1
            ctx.progress(n, None, f"row {n}")  # no total: a message and a count, no fraction
        calls += n
        return n

    job = app.submit("chatty", [{"n": i} for i in range(4)])
    view = job.wait(timeout=30)

    assert view.job.succeeded == 4
    assert calls > 1000
    assert 1 <= len(writes) <= 4 * 0.6 / (app.settings.progress_interval_ms / 1000) + 4, writes
    with app.store.db.read() as conn:  # the worker deleted its items' rows once they ended
        assert conn.execute(select(func.count()).select_from(item_progress)).scalar_one() == 0


def test_bad_progress_reports_fail_the_item_with_a_clear_message(app: Batchyard) -> None:
    @app.handler("bad_progress", max_attempts=1)
    def bad_progress(item: dict[str, Any], ctx: ItemContext) -> None:
        ctx.progress(float(item["done"]), item.get("total"))

    job = app.submit("bad_progress", [{"done": -1}, {"done": 1, "total": 0}, {"done": "nan"}])
    job.wait(timeout=30)
    messages = [e.error["message"] for e in job.errors() if e.error]
    assert messages == [
        "progress done must be 0 or more, got -1.0",
        "progress total must be positive (or None), got 0",
        "progress 'done' must be a finite number, got nan",
    ]
