"""The append-only job timeline, and the one place job events are written: so the notifications an event makes
(``store/outbox.py``) are written with it, in its transaction, whichever path moved the job."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert

from batchyard.core.notifications import NOTIFYING_TIMELINE_EVENTS
from batchyard.store.outbox import enqueue_notifications
from batchyard.store.schema import job_events


def add_event(
    conn: Connection,
    job_id: str,
    at: float,
    type_: str,
    *,
    actor: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(job_events).values(
            job_id=job_id,
            at=at,
            type=type_,
            actor=actor,
            message=message,
            data=json.dumps(data) if data else None,
        )
    )
    if type_ in NOTIFYING_TIMELINE_EVENTS:
        enqueue_notifications(conn, job_id, at, type_)
