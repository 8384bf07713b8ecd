"""Helpers for integration tests: run a worker on a thread, wait for a job, check counters."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from batchyard import Batchyard
from batchyard.app import InProcessWorker
from batchyard.services.jobs import JobView


@contextlib.contextmanager
def running_worker(app: Batchyard, **options: object) -> Iterator[InProcessWorker]:
    runner = InProcessWorker(app, **options)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def wait_finished(app: Batchyard, job_id: str, timeout: float = 30.0) -> JobView:
    box: list[JobView] = []

    def done() -> bool:
        box[:] = [app.service.get(job_id)]
        return box[0].finished

    wait_for(done, timeout, f"job {job_id} to finish")
    return box[0]


def assert_counters_match_items(app: Batchyard, job_id: str) -> None:
    """The job's counters (kept incrementally) equal a recount of the items table."""
    job = app.store.get_job(job_id)
    recount = app.store.recount(job_id)
    kept = {
        "queued": job.queued,
        "running": job.running,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "cancelled": job.cancelled,
    }
    assert {k: v for k, v in kept.items() if v} == recount, (kept, recount)
    assert sum(recount.values()) == job.total
    # Items end cancelled only when someone stopped the job: never in a job that completed by itself.
    stops = {e.type for e in app.store.list_events(job_id)} & {"cancelling", "cancelled", "failed", "expired"}
    if job.status in ("finalizing", "completed") or not stops:
        assert recount.get("cancelled", 0) == 0, (
            f"{recount.get('cancelled')} items cancelled in a job nobody "
            f"stopped ({job.status}, events: {sorted(stops)})"
        )
