"""Helpers for integration tests: run a worker on a thread, wait for a job, check counters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import ColumnElement, func, select

from batchyard import Batchyard
from batchyard.app import InProcessWorker
from batchyard.services.jobs import JobView

from ..waits import wait_until


@contextlib.contextmanager
def running_worker(app: Batchyard, **options: object) -> Iterator[InProcessWorker]:
    runner = InProcessWorker(app, **options)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def wait_finished(app: Batchyard, job_id: str, timeout: float = 30.0) -> JobView:
    box: list[JobView] = []

    def done() -> bool:
        box[:] = [app.service.get(job_id)]
        return box[0].finished

    wait_until(done, timeout=timeout, what=f"job {job_id} to finish")
    return box[0]


def wait_store_clock_past(
    app: Batchyard, moment: ColumnElement[float], where: ColumnElement[bool], what: str, timeout: float = 10.0
) -> None:
    """Until the store's clock is past a moment the store keeps (a lease's end, a retry's due time, a job's
    expiry), as the store reads it: the store acts on the database's clock, not on the test's."""

    def passed() -> bool:
        with app.store.db.read() as conn:
            latest = conn.execute(select(func.max(moment)).where(where)).scalar_one()
            assert latest is not None, f"no row to wait on for {what}"
            return app.store.db.now(conn) > latest

    wait_until(passed, timeout=timeout, what=what)


def assert_counters_match_items(app: Batchyard, job_id: str) -> None:
    """The job's counters (kept incrementally) equal a recount of the items table."""
    job = app.store.jobs.get_job(job_id)
    recount = app.store.items.recount(job_id)
    kept = {
        "queued": job.queued,
        "running": job.running,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "cancelled": job.cancelled,
        "skipped": job.skipped,
    }
    assert {k: v for k, v in kept.items() if v} == recount, (kept, recount)
    assert sum(recount.values()) == job.total
    # Items end cancelled only when someone stopped the job: never in a job that completed by itself.
    # (A stopped job run again with its failed items only, ``--only-failed``, completes keeping its cancelled ones.)
    types = {e.type for e in app.store.jobs.list_events(job_id)}
    stops = types & {"cancelling", "cancelled", "failed", "expired"}
    if (job.status in ("finalizing", "completed") and "rerun" not in types) or not stops:
        assert recount.get("cancelled", 0) == 0, (
            f"{recount.get('cancelled')} items cancelled in a job nobody "
            f"stopped ({job.status}, events: {sorted(stops)})"
        )
