"""Sessions remember the API key they were made from, so revoking the key ends them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A session made before this revision cannot say which key made it, so a later revocation could not end it:
    # sign everyone out once instead (sessions are short-lived dashboard cookies; signing in again is cheap).
    op.execute(sa.text("DELETE FROM sessions"))
    op.add_column("sessions", sa.Column("api_key_id", sa.String(40)))
    op.create_index("ix_sessions_api_key", "sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_api_key", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("api_key_id")
