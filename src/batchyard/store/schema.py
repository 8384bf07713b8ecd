"""The tables, as SQLAlchemy Core. The Alembic migrations under ``migrations/`` create exactly these.

Why the items table has no index on ``status``: a status index gets a new entry (and the heap a non-HOT tuple) on
every claim and completion, which is what makes PostgreSQL queues bloat. Fresh items are claimed by range from the
job's ``claim_cursor`` over the primary key; items that come back (retry, rescued lease, retry-failed) go through
the small ``item_requeue`` table; leases live in ``leases``, one row per claimed chunk, so a heartbeat touches one
row per chunk instead of every item.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("handler", String(200), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("project", String(200)),
    Column("status", String(16), nullable=False),
    # Why the job is in its status (core/lifecycle.StatusReason, e.g. paused_by_handler) and the message that
    # came with it; NULL when nothing needs saying. Cleared by any move to another status.
    Column("status_reason", String(40)),
    Column("status_message", Text),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("params", Text),  # JSON
    Column("description", Text),
    Column("tags", Text),  # JSON list
    Column("meta", Text),  # JSON object (user metadata)
    Column("source", Text),  # where the items came from (file name) for display
    # counters, changed in the same transaction as the items they count
    Column("total", BigInteger, nullable=False, server_default="0"),
    Column("queued", BigInteger, nullable=False, server_default="0"),
    Column("running", BigInteger, nullable=False, server_default="0"),
    Column("succeeded", BigInteger, nullable=False, server_default="0"),
    Column("failed", BigInteger, nullable=False, server_default="0"),
    Column("cancelled", BigInteger, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("busy_seconds", Float, nullable=False, server_default="0"),  # summed handler time of finished items
    Column("usage", Text),  # JSON object of summed counters
    # timestamps: epoch seconds from the database clock
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("last_activity_at", Float),
    Column("scheduled_at", Float),
    Column("expires_at", Float),
    Column("error", Text),  # JSON {code, message}
    # settings
    Column("max_attempts", Integer, nullable=False),
    Column("backoff_base_seconds", Float, nullable=False),
    Column("backoff_max_seconds", Float, nullable=False),
    Column("timeout_seconds", Float),
    Column("concurrency", Integer),
    Column("max_failures", BigInteger),
    Column("max_failure_rate", Float),
    # claim bookkeeping
    Column("claim_cursor", BigInteger, nullable=False, server_default="0"),
    Column("retry_due_at", Float),
    Column("last_claimed_at", Float, nullable=False, server_default="0"),
    # result files
    Column("files_written_at", Float),
    Column("files_lease_until", Float),
    Column("result_files", Text),  # JSON {name: {bytes, rows}}
    # notifications: the job's own webhook (signed with its owner's default secret) and who gets an email when
    # it ends (JSON list); see store/outbox.py
    Column("webhook_url", Text),
    Column("notify_emails", Text),
    Index("ix_jobs_claim", "status", "priority", "last_claimed_at"),
    # The job list (bench/job_list.py): a page in each sort order, for everyone or one owner, optionally by
    # status, is a walk down one of these, ending the page's keyset (value, id) in the index itself.
    Index("ix_jobs_owner_created", "owner", "created_at", "id"),
    Index("ix_jobs_created", "created_at", "id"),
    Index("ix_jobs_status_created", "status", "created_at", "id"),
    Index("ix_jobs_owner_status_created", "owner", "status", "created_at", "id"),
    Index("ix_jobs_priority", "priority", "id"),
    Index("ix_jobs_total", "total", "id"),
    Index("ix_jobs_activity", "last_activity_at"),
)

items = Table(
    "items",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("key", Text, nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("rescues", Integer, nullable=False, server_default="0"),  # crashes it was in flight in (not attempts)
    Column("lease_token", String(40)),
    Column("available_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("result", Text),  # JSON
    Column("error", Text),  # JSON {type, message, attempt, traceback, code}
    Column("usage", Text),  # JSON
    # A failed item's error signature (core/errorsig.py), written with its failure and cleared when it is queued
    # again: non-NULL exactly while the item is failed. Its job's failures are grouped by it in SQL.
    Column("error_signature", String(16)),
    Index("ux_items_job_key", "job_id", "key", unique=True),
)
# Failures by job and signature (error groups, their samples, retrying and exporting one): a partial index, so it
# holds failed items only and success never touches it. finished_at is deliberately not in it: a column in any
# index turns PostgreSQL's in-place (HOT) update of every completion into a new row version plus index entries.
# Created by plain DDL on both databases (no dialect-specific keyword: that would load the PostgreSQL dialect in
# every SQLite process); declared below only so the migrations check sees it.
ERROR_SIGNATURE_INDEX_SQL = (
    "CREATE INDEX ix_items_error_signature ON items (job_id, error_signature, seq) WHERE error_signature IS NOT NULL"
)
Index("ix_items_error_signature", items.c.job_id, items.c.error_signature, items.c.seq).ddl_if(
    callable_=lambda *args, **kwargs: False
)


def _create_error_signature_index(target: Table, connection: Connection, **kwargs: Any) -> None:
    connection.exec_driver_sql(ERROR_SIGNATURE_INDEX_SQL)


event.listen(items, "after_create", _create_error_signature_index)
# Items are updated in place two or three times in their life: fillfactor 50 leaves room on each page for HOT
# updates on PostgreSQL. Set right after CREATE TABLE (as migration 0001 creates it) rather than with
# ``postgresql_with=``, which would load the PostgreSQL dialect in every SQLite process (a slower CLI start).
event.listen(items, "after_create", DDL("ALTER TABLE items SET (fillfactor = 50)").execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]

item_requeue = Table(
    "item_requeue",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("available_at", Float, nullable=False),
    Column("rescues", Integer, nullable=False, server_default="0"),  # > 0: a suspect, claimed apart
    Index("ix_item_requeue_due", "job_id", "available_at"),
)

leases = Table(
    "leases",
    metadata,
    Column("token", String(40), primary_key=True),
    Column("worker_id", String(80), nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("seqs", Text, nullable=False),  # JSON list of the claimed sequence numbers
    Column("expires_at", Float, nullable=False),
    Index("ix_leases_expires", "expires_at"),
    Index("ix_leases_worker", "worker_id"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("handlers", Text, nullable=False),  # JSON list
    Column("concurrency", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("in_flight", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # running | stopping | stopped | lost
    Column("jobs", Text),  # JSON list of the job ids it is limited to (``Job.wait``'s worker); NULL: any job
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Column("type", String(40), nullable=False),
    Column("actor", String(200)),
    Column("message", Text),
    Column("data", Text),  # JSON
    Index("ix_job_events_job", "job_id", "id"),
)

progress_samples = Table(
    "progress_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    # running items' reported progress (``ctx.progress``) in items, e.g. 0.5 = one item half done: part of the rate
    Column("partial", Float, nullable=False, server_default="0"),
    Index("ix_progress_samples_job", "job_id", "at"),
)

# What running items report with ``ctx.progress(done, total, message)``: the latest report per item, written by
# its worker with its flushes (coalesced, never a transaction per call). A row counts only while its item is
# running under the same lease (readers join on items' lease_token), so a row left by an earlier attempt or a dead
# worker is never shown; maintenance deletes such rows. ``fraction`` = done / total clamped to [0, 1] (NULL
# without a total), summed per job for its percent, rate and ETA.
item_progress = Table(
    "item_progress",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("lease_token", String(40), nullable=False),
    Column("done", Float, nullable=False),
    Column("total", Float),
    Column("fraction", Float),
    Column("message", Text),
    Column("updated_at", Float, nullable=False),
)

# Usage counters per job, one row per name: summed by the stats with a plain GROUP BY (jobs.usage keeps the same
# totals as one JSON object, for showing a job). Both change in the completion that adds the usage.
job_usage = Table(
    "job_usage",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("amount", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("prefix", String(20), nullable=False),  # shown in lists; the key itself is never stored
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the whole key
    Column("owner", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # admin | member | viewer
    Column("name", String(200)),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Index("ix_api_keys_owner", "owner"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("api_key_id", String(40)),  # the key signed in with (revoking it ends the session); null: a login link
    Index("ix_sessions_expires", "expires_at"),
    Index("ix_sessions_api_key", "api_key_id"),
)

login_tokens = Table(
    "login_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
)

files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Index("ix_files_owner_created", "owner", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Jobs being deleted by retention (``batchyard prune``, maintenance): the job's row goes first, in one short
# transaction that writes this row, so the job is gone for readers at once and no retry can revive it; its items,
# events and samples follow in bounded chunks, one short transaction each; the row goes last. A process that dies
# half-way leaves this row, and whoever prunes next carries on from it.
job_purges = Table(
    "job_purges",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("queued_at", Float, nullable=False),
)

# Quotas (core/quotas.py): one row per owner (``project`` '') or per project of an owner. A NULL limit is no limit.
quotas = Table(
    "quotas",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("project", String(200), primary_key=True),
    Column("period", String(8), nullable=False),
    Column("max_items", BigInteger),
    Column("max_tokens", BigInteger),
    Column("max_cost", Float),
    Column("max_running", Integer),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200)),
)

# What an owner (per project, '' for none) spent in each period bucket (core/quotas.period_key: ``total``,
# ``d:2026-12-01``, ``m:2026-12``). Written only while a quota applies to the job, in the claim's and the
# completion's own transactions; every bucket at once, so changing a quota's period keeps what was counted.
quota_usage = Table(
    "quota_usage",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("project", String(200), primary_key=True),
    Column("period_key", String(16), primary_key=True),
    Column("items", BigInteger, nullable=False, server_default="0"),
    Column("tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
)

# Webhook endpoints: each owner's URLs and the events they listen to (JSON list; empty: every event). The secret
# is kept as it is: every delivery is signed with it (Standard Webhooks), so it cannot be a hash.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list
    Column("secret", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_webhooks_owner", "owner", "created_at"),
)

# Each owner's default signing secret: jobs that name their own webhook_url are signed with it.
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("secret", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
)

# The notification outbox: one row per message to send (a webhook to one endpoint or a job's own URL, or one job's
# email), inserted in the transaction that records the job's event, so a message exists exactly when its event
# does. ``next_attempt_at`` is when it is due (NULL once delivered or given up); a dispatcher claims a due row by
# moving it a lease ahead with its ``lease_token``, and settles it only while it still holds that token.
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header: the same on every retry
    Column("kind", String(16), nullable=False),  # webhook | email
    Column("owner", String(200), nullable=False),
    Column("job_id", String(40), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("webhook_id", String(40)),  # NULL: the job's own webhook_url, or an email
    Column("url", Text),
    Column("occurred_at", Float, nullable=False),
    Column("payload", Text),  # the body, frozen at the first attempt so every retry sends the same bytes
    Column("status", String(16), nullable=False),  # pending | delivered | gave_up
    Column("tries", Integer, nullable=False, server_default="0"),  # failed attempts of the current round
    Column("next_attempt_at", Float),
    Column("lease_token", String(40)),
    Column("created_at", Float, nullable=False),
    Column("last_attempt_at", Float),
    Column("delivered_at", Float),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Index("ix_outbox_due", "next_attempt_at"),
    Index("ix_outbox_webhook", "webhook_id"),
    Index("ix_outbox_job", "job_id"),
)

# The delivery log: one row per attempt (what GET /api/v1/webhooks/{id}/deliveries pages through).
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False),
    Column("webhook_id", String(40)),
    Column("at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("outcome", String(16), nullable=False),  # delivered | failed (will retry) | gave_up
    Index("ix_delivery_attempts_webhook", "webhook_id", "id"),
    Index("ix_delivery_attempts_message", "message_id", "id"),
)
