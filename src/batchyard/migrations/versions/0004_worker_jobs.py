"""A worker may be limited to some jobs (``Job.wait``'s in-process worker): ``workers.jobs``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A JSON list of job ids; NULL (every worker registered before this revision) means any job of its handlers.
    op.add_column("workers", sa.Column("jobs", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("jobs")
