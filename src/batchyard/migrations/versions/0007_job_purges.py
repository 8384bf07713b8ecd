"""Retention: ``job_purges``, the jobs whose rows are being deleted in chunks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_purges",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("queued_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_purges")
