"""Lease rescues are counted apart from attempts: ``items.rescues`` and ``item_requeue.rescues``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("rescues", sa.Integer, nullable=False, server_default="0"))
    op.add_column("item_requeue", sa.Column("rescues", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("item_requeue") as batch:
        batch.drop_column("rescues")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("rescues")
