"""What a job says about its progress: rate and ETA (one definition, core/rate.py), live workers, stale leases."""

from __future__ import annotations

import dataclasses
import time

import pytest

from batchyard import Batchyard
from batchyard.store.schema import leases

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
    samples = [(now - 600, 0, 0), (now - 60, 100, 0), (now - 30, 400, 0)]

    view = app.service.view(running, samples)

    assert view.workers_alive == 1
    assert view.items_per_second == pytest.approx(10.0, rel=0.05)
    assert view.eta_seconds == pytest.approx(30.0, rel=0.05)  # the lifetime average would say ~257 s


def test_no_eta_while_no_live_worker_takes_the_job(app: Batchyard) -> None:
    job = app.store.jobs.get_job(app.submit("echo", [{"n": i} for i in range(100)]).id)
    now = time.time()
    running = dataclasses.replace(job, status="running", queued=50, succeeded=50, started_at=now - 30)

    view = app.service.view(running, [(now - 20, 10, 0)])

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
