"""Progress inside an item (``ctx.progress``): ``item_progress``, and ``progress_samples.partial``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_progress",
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("lease_token", sa.String(40), nullable=False),
        sa.Column("done", sa.Float, nullable=False),
        sa.Column("total", sa.Float),
        sa.Column("fraction", sa.Float),
        sa.Column("message", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.add_column("progress_samples", sa.Column("partial", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("progress_samples") as batch:
        batch.drop_column("partial")
    op.drop_table("item_progress")
