"""The append-only job timeline."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert

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
