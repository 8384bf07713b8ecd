"""Webhook endpoints: each owner's URLs, the events they listen to, and their signing secrets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select

from batchyard.core.notifications import new_secret, new_webhook_id
from batchyard.core.records import WebhookRecord
from batchyard.store.engine import Database
from batchyard.store.outbox import OutboxStore
from batchyard.store.schema import webhooks


class WebhookStore:
    """``store.webhooks``: add, list, get and delete endpoints."""

    def __init__(self, db: Database, outbox: OutboxStore) -> None:
        self.db = db
        self.outbox = outbox

    def add(self, owner: str, url: str, events: Sequence[str]) -> tuple[WebhookRecord, str]:
        """A new endpoint and its secret (returned this once; deliveries are signed with it)."""
        secret = new_secret()
        webhook_id = new_webhook_id()
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                insert(webhooks).values(
                    id=webhook_id, owner=owner, url=url, events=json.dumps(list(events)), secret=secret, created_at=now
                )
            )
        return WebhookRecord(webhook_id, owner, url, list(events), now), secret

    def count(self, owner: str) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).where(webhooks.c.owner == owner)).scalar_one())

    def list(self, owner: str | None, *, after: tuple[float, str] | None, limit: int) -> list[WebhookRecord]:
        """Endpoints of ``owner`` (None: everyone's), oldest first, after ``after`` = (created_at, id)."""
        stmt = select(webhooks.c.id, webhooks.c.owner, webhooks.c.url, webhooks.c.events, webhooks.c.created_at)
        if owner is not None:
            stmt = stmt.where(webhooks.c.owner == owner)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(webhooks.c.created_at > at, and_(webhooks.c.created_at == at, webhooks.c.id > last_id))
            )
        stmt = stmt.order_by(webhooks.c.created_at, webhooks.c.id).limit(limit)
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(stmt)]

    def get(self, webhook_id: str) -> WebhookRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(webhooks.c.id, webhooks.c.owner, webhooks.c.url, webhooks.c.events, webhooks.c.created_at).where(
                    webhooks.c.id == webhook_id
                )
            ).first()
        return None if row is None else _record(row)

    def delete(self, webhook_id: str) -> bool:
        """Delete the endpoint with its undelivered messages and its delivery log."""
        with self.db.write() as conn:
            gone = conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id)).rowcount
            self.outbox.delete_of_webhook(conn, webhook_id)
        return bool(gone)


def _record(row: Any) -> WebhookRecord:
    return WebhookRecord(row.id, row.owner, row.url, json.loads(row.events), row.created_at)
