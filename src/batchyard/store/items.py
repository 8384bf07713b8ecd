"""Items: pages of a job's items read over the primary key, for the API, result files and checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select

from batchyard.core.records import ErrorGroupRecord, ItemRecord
from batchyard.errors import NotFound
from batchyard.store.engine import Database
from batchyard.store.schema import items


class ItemStore:
    """``store.items``: reads of items (their writes are claims and completions, :mod:`.claims`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def item_page(
        self,
        job_id: str,
        *,
        after_seq: int = -1,
        limit: int = 100,
        statuses: Sequence[str] = (),
        max_seq: int | None = None,
        with_payload: bool = False,
    ) -> list[ItemRecord]:
        """Up to ``limit`` items with ``after_seq < seq <= max_seq`` in order, read over the primary key.

        Items have no status index (see :mod:`batchyard.store.schema`), so a status filter scans rows; ``max_seq``
        bounds that scan."""
        query = select(*_item_columns(with_payload)).where(items.c.job_id == job_id, items.c.seq > after_seq)
        if max_seq is not None:
            query = query.where(items.c.seq <= max_seq)
        if statuses:
            query = query.where(items.c.status.in_(list(statuses)))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(items.c.seq).limit(limit)).all()
        return [ItemRecord.from_row(r, with_payload=with_payload) for r in rows]

    def iter_items(
        self, job_id: str, *, statuses: Sequence[str] = (), page_size: int = 5000, with_payload: bool = False
    ) -> Iterator[ItemRecord]:
        """Every item of a job in order, read page by page (keyset on seq) so no transaction stays open long."""
        after = -1
        while True:
            page = self.item_page(
                job_id, after_seq=after, limit=page_size, statuses=statuses, with_payload=with_payload
            )
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].seq

    def iter_item_rows(self, job_id: str, page_size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Raw rows (seq, key, status, attempts, result, error, started_at, finished_at, usage) in order, JSON
        left as text: for writing result files fast. Paged by seq like :meth:`iter_items`."""
        ph = "%s" if self.db.is_postgres else "?"
        sql = (
            "SELECT seq, key, status, attempts, result, error, started_at, finished_at, usage FROM items "
            f"WHERE job_id = {ph} AND seq > {ph} ORDER BY seq LIMIT {int(page_size)}"
        )
        after = -1
        while True:
            with self.db.read() as conn:
                page = self.db.driver(conn).execute(sql, (job_id, after)).fetchall()
            yield from page
            if len(page) < page_size:
                return
            after = page[-1][0]

    # -- error groups: over ix_items_error_signature (failed items only; see schema.py) ------------------------

    def error_groups(self, job_id: str, *, limit: int, after: tuple[int, str] | None = None) -> list[ErrorGroupRecord]:
        """A page of the job's error groups, largest first (then by signature): (count, signature) keyset pages,
        strictly after ``after``. Grouped by the database; no item is loaded."""
        count = func.count().label("n")
        stmt = (
            select(items.c.error_signature, count, func.min(items.c.finished_at), func.max(items.c.finished_at))
            .where(items.c.job_id == job_id, items.c.error_signature.is_not(None))
            .group_by(items.c.error_signature)
        )
        if after is not None:
            n, signature = after
            stmt = stmt.having(or_(count < n, and_(count == n, items.c.error_signature > signature)))
        stmt = stmt.order_by(count.desc(), items.c.error_signature).limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return [ErrorGroupRecord(sig, int(n), first, last) for sig, n, first, last in rows]

    def error_group(self, job_id: str, signature: str) -> ErrorGroupRecord | None:
        """One error group's numbers, or None when no failed item of the job has that signature."""
        stmt = select(func.count(), func.min(items.c.finished_at), func.max(items.c.finished_at)).where(
            items.c.job_id == job_id, items.c.error_signature == signature
        )
        with self.db.read() as conn:
            n, first, last = conn.execute(stmt).one()
        return ErrorGroupRecord(signature, int(n), first, last) if n else None

    def error_group_items(
        self, job_id: str, signature: str, *, after_seq: int = -1, limit: int = 100, with_payload: bool = False
    ) -> list[ItemRecord]:
        """Up to ``limit`` failed items of one error group in input order, after input position ``after_seq``."""
        query = (
            select(*_item_columns(with_payload))
            .where(items.c.job_id == job_id, items.c.error_signature == signature, items.c.seq > after_seq)
            .order_by(items.c.seq)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [ItemRecord.from_row(r, with_payload=with_payload) for r in rows]

    def iter_error_group(self, job_id: str, signature: str, page_size: int = 1000) -> Iterator[ItemRecord]:
        """Every failed item of one error group, with its payload, page by page (keyset on seq)."""
        after = -1
        while True:
            page = self.error_group_items(job_id, signature, after_seq=after, limit=page_size, with_payload=True)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].seq

    def get_item(self, job_id: str, key: str) -> ItemRecord:
        with self.db.read() as conn:
            row = conn.execute(select(items).where(items.c.job_id == job_id, items.c.key == key)).first()
        if row is None:
            raise NotFound(f"job {job_id!r} has no item {key!r}", param="key")
        return ItemRecord.from_row(row)

    def recount(self, job_id: str) -> dict[str, int]:
        """Count items by status with a scan: for checks and tests, never for showing progress."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(items.c.status, func.count()).where(items.c.job_id == job_id).group_by(items.c.status)
            ).all()
        return {status: n for status, n in rows}


def _item_columns(with_payload: bool) -> list[Any]:
    return [
        items.c.job_id,
        items.c.seq,
        items.c.key,
        items.c.status,
        items.c.attempts,
        items.c.result,
        items.c.error,
        items.c.started_at,
        items.c.finished_at,
        items.c.usage,
        items.c.rescues,
        (items.c.payload if with_payload else items.c.lease_token.label("payload")),
    ]
