"""Store: uploaded files, plus the paged reads behind the items API and the job-list export.

Every read here is a keyset page (on an indexed key), so a request costs O(page) whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert, or_, select

from batchyard.errors import NotFound
from batchyard.schema import files, items, jobs
from batchyard.store.engine import Database
from batchyard.store.records import ItemRecord


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file's metadata; the bytes live in storage under ``uploads/{id}``."""

    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class JobExportRow:
    """The columns of one job in the job-list CSV (no params or metadata: those can be large)."""

    id: str
    handler: str
    status: str
    owner: str
    project: str | None
    total: int
    succeeded: int
    failed: int
    cancelled: int
    cost: float
    created_at: float
    finished_at: float | None

    @property
    def percent(self) -> float:
        done = self.succeeded + self.failed + self.cancelled
        return 100.0 * done / self.total if self.total else 100.0


class FilesStore:
    db: Database

    # -- uploaded files -----------------------------------------------------------------------------------

    def add_file(self, file_id: str, owner: str, filename: str, purpose: str, size: int, sha256: str,
                 expires_at: float | None = None) -> FileRecord:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(insert(files).values(id=file_id, owner=owner, filename=filename, purpose=purpose,
                                              bytes=size, sha256=sha256, created_at=now, expires_at=expires_at))
        return FileRecord(file_id, owner, filename, purpose, size, sha256, now, expires_at)

    def get_file(self, file_id: str) -> FileRecord:
        with self.db.read() as conn:
            row = conn.execute(select(files).where(files.c.id == file_id)).first()
        if row is None:
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return _file(row)

    def list_files(self, *, owner: str | None = None, purpose: str | None = None, limit: int = 100,
                   before: tuple[float, str] | None = None) -> list[FileRecord]:
        """Newest first; ``before`` is the (created_at, id) of the last file of the previous page."""
        query = select(files).order_by(files.c.created_at.desc(), files.c.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(files.c.owner == owner)
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        if before is not None:
            created_at, file_id = before
            query = query.where(or_(files.c.created_at < created_at,
                                    and_(files.c.created_at == created_at, files.c.id < file_id)))
        with self.db.read() as conn:
            return [_file(r) for r in conn.execute(query)]

    def delete_file(self, file_id: str) -> bool:
        with self.db.write() as conn:
            return bool(conn.execute(delete(files).where(files.c.id == file_id)).rowcount)

    # -- item pages ----------------------------------------------------------------------------------------

    def item_page(self, job_id: str, *, after_seq: int = -1, limit: int = 100, statuses: Sequence[str] = (),
                  max_seq: int | None = None, with_payload: bool = False) -> list[ItemRecord]:
        """Up to ``limit`` items with ``after_seq < seq <= max_seq`` in order, read over the primary key.

        Items have no status index (see :mod:`batchyard.schema`), so a status filter scans rows; ``max_seq``
        bounds that scan."""
        cols = [items.c.job_id, items.c.seq, items.c.key, items.c.status, items.c.attempts, items.c.result,
                items.c.error, items.c.started_at, items.c.finished_at, items.c.usage,
                (items.c.payload if with_payload else items.c.lease_token.label("payload"))]
        query = select(*cols).where(items.c.job_id == job_id, items.c.seq > after_seq)
        if max_seq is not None:
            query = query.where(items.c.seq <= max_seq)
        if statuses:
            query = query.where(items.c.status.in_(list(statuses)))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(items.c.seq).limit(limit)).all()
        return [ItemRecord.from_row(r, with_payload=with_payload) for r in rows]

    # -- the job list as CSV ----------------------------------------------------------------------------------

    def job_export_page(self, *, owner: str | None = None, statuses: Sequence[str] = (), handler: str | None = None,
                        project: str | None = None, before_id: str | None = None,
                        limit: int = 1000) -> list[JobExportRow]:
        """Newest first (job ids sort by creation), keyset on the id."""
        query = select(jobs.c.id, jobs.c.handler, jobs.c.status, jobs.c.owner, jobs.c.project, jobs.c.total,
                       jobs.c.succeeded, jobs.c.failed, jobs.c.cancelled, jobs.c.cost, jobs.c.created_at,
                       jobs.c.finished_at).order_by(jobs.c.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if statuses:
            query = query.where(jobs.c.status.in_(list(statuses)))
        if handler is not None:
            query = query.where(jobs.c.handler == handler)
        if project is not None:
            query = query.where(jobs.c.project == project)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        with self.db.read() as conn:
            return [JobExportRow(**row._mapping) for row in conn.execute(query)]


def _file(row: object) -> FileRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return FileRecord(m["id"], m["owner"], m["filename"], m["purpose"], m["bytes"], m["sha256"], m["created_at"],
                      m["expires_at"])
