"""Initial schema: jobs, items, requeue, leases, workers, events, progress samples.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("handler", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("params", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("tags", sa.Text),
        sa.Column("meta", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("queued", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("running", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("succeeded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cancelled", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("busy_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("usage", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("last_activity_at", sa.Float),
        sa.Column("scheduled_at", sa.Float),
        sa.Column("expires_at", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("backoff_base_seconds", sa.Float, nullable=False),
        sa.Column("backoff_max_seconds", sa.Float, nullable=False),
        sa.Column("timeout_seconds", sa.Float),
        sa.Column("concurrency", sa.Integer),
        sa.Column("max_failures", sa.BigInteger),
        sa.Column("max_failure_rate", sa.Float),
        sa.Column("claim_cursor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("retry_due_at", sa.Float),
        sa.Column("last_claimed_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("files_written_at", sa.Float),
        sa.Column("files_lease_until", sa.Float),
        sa.Column("result_files", sa.Text),
    )
    op.create_index("ix_jobs_claim", "jobs", ["status", "priority", "last_claimed_at"])
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at"])
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_activity", "jobs", ["last_activity_at"])

    op.create_table(
        "items",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_token", sa.String(40)),
        sa.Column("available_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("usage", sa.Text),
        postgresql_with={"fillfactor": 50},
    )
    op.create_index("ux_items_job_key", "items", ["job_id", "key"], unique=True)

    op.create_table(
        "item_requeue",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("available_at", sa.Float, nullable=False),
    )
    op.create_index("ix_item_requeue_due", "item_requeue", ["job_id", "available_at"])

    op.create_table(
        "leases",
        sa.Column("token", sa.String(40), primary_key=True),
        sa.Column("worker_id", sa.String(80), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("seqs", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_leases_expires", "leases", ["expires_at"])
    op.create_index("ix_leases_worker", "leases", ["worker_id"])

    op.create_table(
        "workers",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("handlers", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
    )

    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("message", sa.Text),
        sa.Column("data", sa.Text),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"])

    op.create_table(
        "progress_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("done", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_progress_samples_job", "progress_samples", ["job_id", "at"])

    op.create_table(
        "job_usage",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("amount", sa.Float, nullable=False),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner"])

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_sessions_expires", "sessions", ["expires_at"])

    op.create_table(
        "login_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float),
    )

    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index("ix_files_owner_created", "files", ["owner", "created_at"])

    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "files",
        "login_tokens",
        "sessions",
        "api_keys",
        "job_usage",
        "progress_samples",
        "job_events",
        "workers",
        "leases",
        "item_requeue",
        "items",
        "jobs",
    ):
        op.drop_table(table)
