"""Job moves inside an open transaction, shared by user actions, completions and maintenance."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, select, update

from batchyard.core.lifecycle import LIVE_JOB_STATUSES, Action, ItemStatus, JobStatus, next_job_status
from batchyard.errors import NotFound
from batchyard.store.schema import item_requeue, items, jobs
from batchyard.store.timeline import add_event


def move_job(conn: Connection, job_id: str, action: Action, **values: Any) -> tuple[str, JobStatus]:
    """Move a job by the lifecycle table; raise NotFound or IllegalTransition (with the current status).

    A move to another status clears ``status_reason`` and ``status_message`` unless ``values`` sets them: a
    reason explains the status it came with, never the next one."""
    current = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id).with_for_update()).scalar_one_or_none()
    if current is None:
        raise NotFound(f"no job {job_id!r}", param="job_id")
    target = next_job_status(current, action)
    if target != current:
        values = {"status_reason": None, "status_message": None, **values}
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(status=target, **values))
    return current, target


def stop_queued_items(conn: Connection, job_id: str, now: float) -> int:
    """Cancel every item not yet started (fresh or waiting to retry); returns how many."""
    n = int(
        conn.execute(
            update(items)
            .where(items.c.job_id == job_id, items.c.status == ItemStatus.QUEUED)
            .values(status=ItemStatus.CANCELLED, finished_at=now)
        ).rowcount
    )
    conn.execute(delete(item_requeue).where(item_requeue.c.job_id == job_id))
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(queued=0, cancelled=jobs.c.cancelled + n, claim_cursor=jobs.c.total, retry_due_at=None)
    )
    return n


def settle_job(conn: Connection, job_id: str, now: float, *, record: bool = True) -> bool:
    """Move a job whose items are all terminal on: to ``finalizing``, or from ``cancelling`` to ``cancelled``.

    ``record=False`` leaves the timeline to the caller (a cancel records who cancelled instead)."""
    finalized = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status.in_(LIVE_JOB_STATUSES), jobs.c.queued == 0, jobs.c.running == 0)
        .values(status=JobStatus.FINALIZING, status_reason=None, status_message=None)
    ).rowcount
    if finalized:
        if record:
            add_event(conn, job_id, now, "finalizing", message="every item finished; writing result files")
        return True
    settled = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.CANCELLING, jobs.c.running == 0)
        .values(status=JobStatus.CANCELLED, finished_at=now, status_reason=None, status_message=None)
    ).rowcount
    if settled and record:
        add_event(conn, job_id, now, "cancelled", message="no item is running any more")
    return bool(settled)


def stop_job(
    conn: Connection, job_id: str, action: Action, error: dict[str, Any], now: float, *, actor: str | None = None
) -> bool:
    """Fail or expire a live job: it ends at once with ``error``; queued items are cancelled, running ones
    are told through their workers' control poll. False if the job was already past stopping."""
    status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id).with_for_update()).scalar_one_or_none()
    if status not in LIVE_JOB_STATUSES:
        return False
    move_job(conn, job_id, action, error=json.dumps(error), finished_at=now, last_activity_at=now)
    n = stop_queued_items(conn, job_id, now)
    add_event(
        conn,
        job_id,
        now,
        "failed" if action is Action.FAIL else "expired",
        actor=actor,
        message=error.get("message"),
        data={"queued_items_cancelled": n},
    )
    return True
