"""Indexes for the job list's filters and sorts on 100,000s of jobs (bench/job_list.py): the created-at ones end
with the id (the keyset's tie-breaker), and status, priority and total get their own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at", "id"])
    op.create_index("ix_jobs_owner_status_created", "jobs", ["owner", "status", "created_at", "id"])
    op.create_index("ix_jobs_priority", "jobs", ["priority", "id"])
    op.create_index("ix_jobs_total", "jobs", ["total", "id"])


def downgrade() -> None:
    for name in ("ix_jobs_total", "ix_jobs_priority", "ix_jobs_owner_status_created", "ix_jobs_status_created"):
        op.drop_index(name, table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at"])
