"""The notification outbox: messages written with the job events they announce, claimed with a lease, settled.

**Written with the event.** :func:`enqueue_notifications` runs inside :func:`~batchyard.store.timeline.add_event`,
the one place every timeline event is written, so whatever moved the job (a person's cancel, a worker's last
completion, maintenance's expiry, a handler's PauseJob, a quota) wrote its messages in the same transaction: a
message exists exactly when its event committed, and survives any crash after.

**Held for result files.** A job that ends cancelled, failed or expired with items has its result files written
by maintenance after: its messages are written not yet due (``next_attempt_at`` NULL) and come due when the files
are (:func:`release_held`), so what they carry is the finished job, with its files (an OpenAI batch's
``output_file_id``).

**Claimed with a lease.** A dispatcher takes due rows (``next_attempt_at <= now``, over ``ix_outbox_due``) with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (``BEGIN IMMEDIATE`` serialises claims on SQLite) and moves them a lease
ahead under a fresh token: another dispatcher skips them until then, and if the claimer dies they come due again
when the lease runs out. Settling a message updates it only while it still holds that token (a dispatcher that
stalled past its lease cannot overwrite what the next one recorded), and writes the attempt to the log.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from batchyard.core.notifications import (
    FINISHING_TIMELINE_EVENTS,
    event_type,
    new_message_id,
    new_secret,
    subscribed,
)
from batchyard.core.records import DeliveryRecord, MessageRecord, OutboxMessage, decode_json
from batchyard.openai_wire import OPENAI_HANDLER
from batchyard.store.engine import Database
from batchyard.store.schema import delivery_attempts, jobs, outbox, webhook_secrets, webhooks

PENDING, DELIVERED, GAVE_UP, FAILED = "pending", "delivered", "gave_up", "failed"
HELD_FOR_FILES = frozenset({"cancelled", "failed", "expired"})
WEBHOOK, EMAIL = "webhook", "email"


def enqueue_notifications(conn: Connection, job_id: str, at: float, timeline_type: str) -> int:
    """Write the messages a job's timeline event makes (none for most events); returns how many."""
    row = conn.execute(
        select(
            jobs.c.owner,
            jobs.c.handler,
            jobs.c.params,
            jobs.c.webhook_url,
            jobs.c.notify_emails,
            jobs.c.total,
            jobs.c.files_written_at,
        ).where(jobs.c.id == job_id)
    ).first()
    if row is None:
        return 0
    params = decode_json(row.params) if row.params else {}
    is_batch = row.handler == OPENAI_HANDLER and isinstance(params, dict) and "completion_window" in params
    event = event_type(timeline_type, is_batch=is_batch)
    if event is None:
        return 0
    # A job that ends cancelled, failed or expired with items gets its result files written after: its messages
    # wait for them (see release_held), so what they carry is the finished job, files and all.
    held = timeline_type in HELD_FOR_FILES and row.total > 0 and row.files_written_at is None
    base = {"owner": row.owner, "job_id": job_id, "event_type": event, "occurred_at": at}
    messages: list[dict[str, Any]] = []
    endpoints = conn.execute(
        select(webhooks.c.id, webhooks.c.url, webhooks.c.events).where(webhooks.c.owner == row.owner)
    ).all()
    for endpoint in endpoints:
        if subscribed(json.loads(endpoint.events), event):
            messages.append({**base, "kind": WEBHOOK, "webhook_id": endpoint.id, "url": endpoint.url})
    if row.webhook_url and event.startswith("job."):
        messages.append({**base, "kind": WEBHOOK, "webhook_id": None, "url": row.webhook_url})
    if row.notify_emails and timeline_type in FINISHING_TIMELINE_EVENTS and json.loads(row.notify_emails):
        messages.append({**base, "kind": EMAIL, "webhook_id": None, "url": None})
    if messages:
        conn.execute(
            insert(outbox),
            [
                {
                    **m,
                    "id": new_message_id(),
                    "status": PENDING,
                    "tries": 0,
                    "next_attempt_at": None if held else at,
                    "created_at": at,
                }
                for m in messages
            ],
        )
    return len(messages)


def release_held(conn: Connection, job_id: str, now: float) -> None:
    """The job's result files are written: its messages that waited for them are due now."""
    conn.execute(
        update(outbox)
        .where(
            outbox.c.job_id == job_id,
            outbox.c.status == PENDING,
            outbox.c.next_attempt_at.is_(None),
            outbox.c.lease_token.is_(None),
        )
        .values(next_attempt_at=now)
    )


class OutboxStore:
    """``store.outbox``: claim due messages, settle attempts, redeliver, and the delivery log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_due(
        self, limit: int, lease_seconds: float, *, job_ids: Sequence[str] | None = None
    ) -> list[OutboxMessage]:
        """Up to ``limit`` due messages (oldest due first), each held for ``lease_seconds`` under one token.
        ``job_ids`` limits it to those jobs' messages (a worker that runs only them).

        An idle poll is one read (over ``ix_outbox_due``): the write transaction, which on SQLite takes the one
        write lock every item flush needs too, is begun only when something is due."""

        def due_now(now: float) -> Any:
            due = select(outbox.c.id).where(outbox.c.next_attempt_at <= now)
            return due if job_ids is None else due.where(outbox.c.job_id.in_(list(job_ids)))

        with self.db.read() as conn:  # the clock first: compared with clock_timestamp() the index is not used
            # ordered by the indexed column, so the planner walks the index (not a scan hoping to meet a due row)
            if conn.execute(due_now(self.db.now(conn)).order_by(outbox.c.next_attempt_at).limit(1)).first() is None:
                return []
        with self.db.write() as conn:
            now = self.db.now(conn)
            due = due_now(now)
            due = due.order_by(outbox.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            token = secrets.token_hex(8)
            rows = conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(next_attempt_at=now + lease_seconds, lease_token=token)
                .returning(outbox)
            ).all()
            secrets_by_endpoint = dict(
                conn.execute(
                    select(webhooks.c.id, webhooks.c.secret).where(
                        webhooks.c.id.in_({r.webhook_id for r in rows if r.webhook_id})
                    )
                ).all()
            )
            owners = {r.owner for r in rows if r.kind == WEBHOOK and r.webhook_id is None}
            default_secrets = {owner: self._default_secret(conn, owner, now) for owner in owners}
        claimed = []
        for r in rows:
            secret = None
            if r.kind == WEBHOOK:
                secret = secrets_by_endpoint.get(r.webhook_id) if r.webhook_id else default_secrets.get(r.owner)
            claimed.append(
                OutboxMessage(
                    id=r.id,
                    kind=r.kind,
                    owner=r.owner,
                    job_id=r.job_id,
                    event_type=r.event_type,
                    webhook_id=r.webhook_id,
                    url=r.url,
                    secret=secret,
                    occurred_at=r.occurred_at,
                    payload=r.payload,
                    tries=r.tries,
                    lease_token=token,
                )
            )
        return sorted(claimed, key=lambda m: (m.occurred_at, m.id))

    def settle(
        self,
        message: OutboxMessage,
        outcome: str,
        *,
        duration_ms: float,
        status_code: int | None = None,
        error: str | None = None,
        payload: str | None = None,
        retry_in: float | None = None,
    ) -> bool:
        """Record one attempt: ``delivered``, ``failed`` (due again in ``retry_in`` seconds) or ``gave_up``.
        False (and nothing written) if the message's lease was lost meanwhile."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            values: dict[str, Any] = {
                "lease_token": None,
                "last_attempt_at": now,
                "last_status_code": status_code,
                "last_error": error,
                "payload": func.coalesce(outbox.c.payload, payload),
            }
            if outcome == DELIVERED:
                values.update(status=DELIVERED, next_attempt_at=None, delivered_at=now)
            elif outcome == FAILED:
                values.update(tries=outbox.c.tries + 1, next_attempt_at=now + (retry_in or 0.0))
            else:
                values.update(status=GAVE_UP, tries=outbox.c.tries + 1, next_attempt_at=None)
            settled = conn.execute(
                update(outbox)
                .where(outbox.c.id == message.id, outbox.c.lease_token == message.lease_token)
                .values(**values)
            ).rowcount
            if not settled:
                return False
            conn.execute(
                insert(delivery_attempts).values(
                    message_id=message.id,
                    webhook_id=message.webhook_id,
                    at=now,
                    duration_ms=duration_ms,
                    status_code=status_code,
                    error=error,
                    outcome=outcome,
                )
            )
            return True

    def redeliver(self, message_id: str) -> bool:
        """Send a message again now, with a fresh retry schedule (same id and body). False if it is unknown."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            return bool(
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == message_id)
                    .values(status=PENDING, tries=0, next_attempt_at=now, lease_token=None)
                ).rowcount
            )

    def get_message(self, message_id: str) -> MessageRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == message_id)).first()
        return None if row is None else _message(row)

    def message_of_attempt(self, attempt_id: int) -> str | None:
        with self.db.read() as conn:
            return conn.execute(
                select(delivery_attempts.c.message_id).where(delivery_attempts.c.id == attempt_id)
            ).scalar()

    def messages_of_jobs(self, job_ids: Sequence[str]) -> list[MessageRecord]:
        with self.db.read() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.job_id.in_(list(job_ids))).order_by(outbox.c.id)).all()
        return [_message(r) for r in rows]

    def deliveries(self, webhook_id: str, *, before_id: int | None, limit: int) -> list[DeliveryRecord]:
        """The endpoint's delivery attempts, newest first (keyset on the attempt id)."""
        stmt = (
            select(delivery_attempts, outbox.c.job_id, outbox.c.event_type, outbox.c.status)
            .join(outbox, outbox.c.id == delivery_attempts.c.message_id)
            .where(delivery_attempts.c.webhook_id == webhook_id)
        )
        if before_id is not None:
            stmt = stmt.where(delivery_attempts.c.id < before_id)
        stmt = stmt.order_by(delivery_attempts.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return [
            DeliveryRecord(
                id=r.id,
                message_id=r.message_id,
                webhook_id=r.webhook_id,
                job_id=r.job_id,
                event_type=r.event_type,
                at=r.at,
                duration_ms=r.duration_ms,
                status_code=r.status_code,
                error=r.error,
                outcome=r.outcome,
                message_status=r.status,
            )
            for r in rows
        ]

    def prune_settled(self, older_than_seconds: float, limit: int = 1000) -> int:
        """Delete delivered and given-up messages (and their attempts) last tried more than ``older_than_seconds``
        ago, at most ``limit`` in one transaction; returns how many."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            ids = list(
                conn.execute(
                    select(outbox.c.id)
                    .where(
                        outbox.c.next_attempt_at.is_(None),
                        outbox.c.status != PENDING,
                        outbox.c.last_attempt_at < now - older_than_seconds,
                    )
                    .limit(limit)
                ).scalars()
            )
            if ids:
                conn.execute(delete(delivery_attempts).where(delivery_attempts.c.message_id.in_(ids)))
                conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))
            return len(ids)

    def default_secret(self, owner: str) -> str:
        """The owner's default signing secret, made on first use."""
        with self.db.write() as conn:
            return self._default_secret(conn, owner, self.db.now(conn))

    def _default_secret(self, conn: Connection, owner: str, now: float) -> str:
        found = conn.execute(select(webhook_secrets.c.secret).where(webhook_secrets.c.owner == owner)).scalar()
        if found is not None:
            return str(found)
        values = {"owner": owner, "secret": new_secret(), "created_at": now}
        if self.db.is_postgres:  # two first uses at once: one insert wins, both read its secret
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(webhook_secrets).values(**values).on_conflict_do_nothing())
        else:  # BEGIN IMMEDIATE: nobody else writes between the read above and this insert
            conn.execute(insert(webhook_secrets).values(**values))
        return str(conn.execute(select(webhook_secrets.c.secret).where(webhook_secrets.c.owner == owner)).scalar_one())

    def delete_of_webhook(self, conn: Connection, webhook_id: str) -> None:
        """An endpoint's messages and log, deleted with it (inside its delete)."""
        conn.execute(delete(outbox).where(outbox.c.webhook_id == webhook_id))
        conn.execute(delete(delivery_attempts).where(delivery_attempts.c.webhook_id == webhook_id))


def _message(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        kind=row.kind,
        owner=row.owner,
        job_id=row.job_id,
        webhook_id=row.webhook_id,
        event_type=row.event_type,
        status=row.status,
        tries=row.tries,
        next_attempt_at=row.next_attempt_at,
        url=row.url,
        occurred_at=row.occurred_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
    )
