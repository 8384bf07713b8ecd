"""Error groups: ``items.error_signature`` (core/errorsig.py) and a partial index over failed items; the failed
items already there get their signature, so a job that failed before this revision groups like a new one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from batchyard.core.errorsig import error_text_signature

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BACKFILL_BATCH = 5000


def upgrade() -> None:
    op.add_column("items", sa.Column("error_signature", sa.String(16)))
    _backfill()
    op.execute(
        "CREATE INDEX ix_items_error_signature ON items (job_id, error_signature, seq) "
        "WHERE error_signature IS NOT NULL"
    )


def _backfill() -> None:
    conn = op.get_bind()
    items = sa.table(
        "items",
        sa.column("job_id", sa.String),
        sa.column("seq", sa.BigInteger),
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
        sa.column("error_signature", sa.String),
    )
    after: tuple[str, int] = ("", -1)
    while True:  # keyset over the primary key, a batch at a time: bounded memory on any number of items
        rows = conn.execute(
            sa.select(items.c.job_id, items.c.seq, items.c.status, items.c.error)
            .where(sa.tuple_(items.c.job_id, items.c.seq) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
            .order_by(items.c.job_id, items.c.seq)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        updates = [
            {"j": job_id, "s": seq, "sig": error_text_signature(error)}
            for job_id, seq, status, error in rows
            if status == "failed"
        ]
        if updates:
            conn.execute(
                sa.update(items)
                .where(items.c.job_id == sa.bindparam("j"), items.c.seq == sa.bindparam("s"))
                .values(error_signature=sa.bindparam("sig")),
                updates,
            )
        after = (rows[-1].job_id, rows[-1].seq)


def downgrade() -> None:
    op.drop_index("ix_items_error_signature", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("error_signature")
