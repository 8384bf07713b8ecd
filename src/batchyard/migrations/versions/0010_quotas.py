"""Quotas per owner (and project): ``quotas`` and ``quota_usage``; ``quota_exhausted`` pauses need no column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("max_items", sa.BigInteger),
        sa.Column("max_tokens", sa.BigInteger),
        sa.Column("max_cost", sa.Float),
        sa.Column("max_running", sa.Integer),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200)),
    )
    op.create_table(
        "quota_usage",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("period_key", sa.String(16), primary_key=True),
        sa.Column("items", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost", sa.Float, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("quota_usage")
    op.drop_table("quotas")
