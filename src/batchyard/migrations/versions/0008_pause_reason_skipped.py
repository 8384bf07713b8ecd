"""Why a job is in its status (``jobs.status_reason``, ``jobs.status_message``: a handler's PauseJob, a person's
pause) and the ``skipped`` counter of items a handler skipped (``SkipItem``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("status_reason", sa.String(40)))
    op.add_column("jobs", sa.Column("status_message", sa.Text))
    op.add_column("jobs", sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("skipped")
        batch.drop_column("status_message")
        batch.drop_column("status_reason")
