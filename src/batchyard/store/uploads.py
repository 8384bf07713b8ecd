"""Store: uploaded files (the bytes live in storage; this is their metadata)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.engine import Row

from batchyard.core.records import FileRecord
from batchyard.errors import NotFound
from batchyard.store.engine import Database
from batchyard.store.schema import files


class UploadStore:
    """``store.uploads``: uploaded files' metadata."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- uploaded files -----------------------------------------------------------------------------------

    def add_file(
        self,
        file_id: str,
        owner: str,
        filename: str,
        purpose: str,
        size: int,
        sha256: str,
        expires_at: float | None = None,
    ) -> FileRecord:
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                insert(files).values(
                    id=file_id,
                    owner=owner,
                    filename=filename,
                    purpose=purpose,
                    bytes=size,
                    sha256=sha256,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return FileRecord(file_id, owner, filename, purpose, size, sha256, now, expires_at)

    def get_file(self, file_id: str) -> FileRecord:
        with self.db.read() as conn:
            row = conn.execute(select(files).where(files.c.id == file_id)).first()
        if row is None:
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return _file(row)

    def list_files(
        self,
        *,
        owner: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        ascending: bool = False,
    ) -> list[FileRecord]:
        """Newest first (oldest first with ``ascending``); ``before`` is the (created_at, id) of the last file of
        the previous page: the page starts after it in that order."""
        if ascending:
            order = (files.c.created_at.asc(), files.c.id.asc())
        else:
            order = (files.c.created_at.desc(), files.c.id.desc())
        query = select(files).order_by(*order).limit(limit)
        if owner is not None:
            query = query.where(files.c.owner == owner)
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        if before is not None:
            created_at, file_id = before
            if ascending:
                query = query.where(
                    or_(files.c.created_at > created_at, and_(files.c.created_at == created_at, files.c.id > file_id))
                )
            else:
                query = query.where(
                    or_(files.c.created_at < created_at, and_(files.c.created_at == created_at, files.c.id < file_id))
                )
        with self.db.read() as conn:
            return [_file(r) for r in conn.execute(query)]

    def expired_files(self, limit: int = 100) -> list[FileRecord]:
        """Files whose ``expires_at`` has passed (by the database clock), oldest expiry first."""
        with self.db.read() as conn:
            now = self.db.now(conn)
            rows = conn.execute(
                select(files)
                .where(files.c.expires_at.is_not(None), files.c.expires_at <= now)
                .order_by(files.c.expires_at)
                .limit(limit)
            )
            return [_file(r) for r in rows]

    def delete_file(self, file_id: str) -> bool:
        with self.db.write() as conn:
            return bool(conn.execute(delete(files).where(files.c.id == file_id)).rowcount)


def _file(row: Row[*tuple[Any, ...]]) -> FileRecord:
    m = row._mapping
    return FileRecord(
        m["id"], m["owner"], m["filename"], m["purpose"], m["bytes"], m["sha256"], m["created_at"], m["expires_at"]
    )
