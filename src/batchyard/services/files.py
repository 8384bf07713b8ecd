"""Uploaded files: the rules around them (ids, owners, purposes, the size limit), over the store and storage.

An upload is written to storage as it arrives, hashed and counted on the way; past the size limit it stops with
:class:`FileTooLarge` and nothing is kept, neither bytes nor row. Someone else's file is reported as missing,
exactly like a wrong id.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import re
import secrets
import unicodedata
from pathlib import Path
from typing import BinaryIO, Literal, get_args

from batchyard.core.cursors import FILE_CURSOR
from batchyard.core.records import FileRecord
from batchyard.data.blobs import LocalStorage
from batchyard.errors import FileTooLarge, InvalidRequest, NotFound
from batchyard.services.auth import Principal
from batchyard.settings import Settings
from batchyard.store import Store

UploadPurpose = Literal["batch", "user_data", "assistants", "fine-tune", "vision", "evals"]
UPLOAD_PURPOSES: tuple[str, ...] = get_args(UploadPurpose)
DEFAULT_PURPOSE = "batch"
DEFAULT_FILENAME = "upload"
MAX_FILENAME_CHARS = 255
MAX_FILES_PAGE = 500
READ_CHUNK_BYTES = 1 << 20
_FILE_ID = re.compile(r"file_[0-9a-f]{24}")


def new_file_id() -> str:
    return f"file_{secrets.token_hex(12)}"


def upload_name(file_id: str) -> str:
    """Where an uploaded file's bytes live in storage."""
    return f"uploads/{file_id}"


def too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(
        f"the file is larger than the upload limit of {human_bytes(limit)} ({limit} bytes); "
        "split it into smaller files or ask the operator to raise BATCHYARD_MAX_UPLOAD_BYTES",
        param="file",
    )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.4g} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def clean_filename(name: str | None) -> str:
    """The name to show and to download under: the last path part, no control characters, at most 255."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    if base in ("", ".", ".."):
        return DEFAULT_FILENAME
    if len(base) > MAX_FILENAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        keep = ext if dot and stem and len(ext) <= 16 else ""
        base = base[: MAX_FILENAME_CHARS - len(keep) - 1] + "." + keep if keep else base[:MAX_FILENAME_CHARS]
    return base


def check_purpose(purpose: str) -> str:
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}, not {purpose[:40]!r}", param="purpose"
        )
    return purpose


def encode_file_cursor(record: FileRecord) -> str:
    """The position after ``record`` in the newest-first list: its exact creation time and id."""
    return FILE_CURSOR.encode(record.created_at, record.id)


def decode_file_cursor(cursor: str) -> tuple[float, str]:
    created_at, file_id = FILE_CURSOR.decode(cursor)
    return float(created_at), str(file_id)


class UploadWriter:
    """One upload on its way into storage: counts, hashes and writes the bytes given to :meth:`write`.

    End it with :meth:`finish` (the file is moved into place) or :meth:`abort` (nothing is left behind)."""

    def __init__(self, storage: LocalStorage, file_id: str, limit: int) -> None:
        self.file_id = file_id
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._stack = contextlib.ExitStack()
        self._out: BinaryIO = self._stack.enter_context(storage.open_write(upload_name(file_id)))

    def write(self, data: bytes) -> None:
        """Raises :class:`FileTooLarge` (and discards the upload) past the limit."""
        self.size += len(data)
        if self.size > self.limit:
            self.abort()
            raise too_large(self.limit)
        self._hash.update(data)
        self._out.write(data)

    def finish(self) -> str:
        """Move the file into place; returns its SHA-256 (hex)."""
        self._stack.close()
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Drop the partial file (idempotent)."""
        reason = _UploadAborted()
        self._stack.__exit__(type(reason), reason, None)


class _UploadAborted(Exception):
    """Thrown into the storage writer so it discards its temporary file instead of keeping it."""


class FileService:
    """Uploads and their owners. ``principal`` decides what is visible: another owner's file is NotFound."""

    def __init__(self, store: Store, storage: LocalStorage, settings: Settings) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_upload_bytes

    # -- uploading ---------------------------------------------------------------------------------------------

    def start_upload(self, principal: Principal) -> UploadWriter:
        """A writer for a new file's bytes; pass it to :meth:`finish_upload` once they are all written."""
        principal.require_write()
        return UploadWriter(self.storage, new_file_id(), self.max_upload_bytes)

    def finish_upload(
        self,
        writer: UploadWriter,
        principal: Principal,
        *,
        filename: str | None,
        purpose: str = DEFAULT_PURPOSE,
        expires_at: float | None = None,
    ) -> FileRecord:
        """Check the purpose, keep the bytes and record the file; on any failure nothing is kept."""
        try:
            check_purpose(purpose)
        except BaseException:
            writer.abort()
            raise
        sha256 = writer.finish()
        try:
            return self.store.uploads.add_file(
                writer.file_id, principal.owner, clean_filename(filename), purpose, writer.size, sha256, expires_at
            )
        except BaseException:
            self.storage.delete(upload_name(writer.file_id))
            raise

    def upload(
        self, principal: Principal, source: BinaryIO, *, filename: str | None = None, purpose: str = DEFAULT_PURPOSE
    ) -> FileRecord:
        """Upload from a binary file object (streamed in chunks), for Python callers."""
        check_purpose(purpose)
        writer = self.start_upload(principal)
        try:
            while chunk := source.read(READ_CHUNK_BYTES):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        if filename is None:
            name = getattr(source, "name", None)
            filename = name if isinstance(name, str) else None
        return self.finish_upload(writer, principal, filename=filename, purpose=purpose)

    # -- reading -----------------------------------------------------------------------------------------------

    def get(self, file_id: str, principal: Principal) -> FileRecord:
        missing = NotFound(f"no file {file_id[:100]!r}", param="file_id")
        if not _FILE_ID.fullmatch(file_id):
            raise missing
        try:
            record = self.store.uploads.get_file(file_id)
        except NotFound:
            raise missing from None
        if not principal.can_see(record.owner):
            raise missing
        return record

    def list(
        self, principal: Principal, *, limit: int = 100, cursor: str | None = None, purpose: str | None = None
    ) -> tuple[list[FileRecord], str | None]:
        """A page of the files ``principal`` may see, newest first, and the cursor of the next page (or None)."""
        limit = max(1, min(limit, MAX_FILES_PAGE))
        before = decode_file_cursor(cursor) if cursor else None
        page = self.store.uploads.list_files(
            owner=principal.owner_scope(), purpose=purpose, limit=limit + 1, before=before
        )
        if len(page) > limit:
            return page[:limit], encode_file_cursor(page[limit - 1])
        return page, None

    def list_after(
        self,
        principal: Principal,
        *,
        after: str | None = None,
        limit: int = 100,
        ascending: bool = False,
        purpose: str | None = None,
    ) -> tuple[builtins.list[FileRecord], bool]:
        """A page of the files ``principal`` may see, newest first (or oldest first), starting after the file
        ``after``; and whether more follow. A missing ``after`` file is an InvalidRequest."""
        position = None
        if after is not None:
            try:
                last = self.get(after, principal)
            except NotFound:
                raise InvalidRequest(f"after: no file {after[:100]!r} to continue from", param="after") from None
            position = (last.created_at, last.id)
        page = self.store.uploads.list_files(
            owner=principal.owner_scope(), purpose=purpose, limit=limit + 1, before=position, ascending=ascending
        )
        return page[:limit], len(page) > limit

    def open(self, file_id: str, principal: Principal) -> tuple[BinaryIO, FileRecord]:
        """The file's bytes (the caller closes the stream) and its record."""
        record = self.get(file_id, principal)
        try:
            return self.storage.open_read(upload_name(record.id)), record
        except FileNotFoundError:  # deleted between the lookup and the open
            raise NotFound(f"no file {file_id!r}", param="file_id") from None

    def open_for_job(self, file_id: str, principal: Principal) -> tuple[Path, str]:
        """(where the file's bytes are, the name it was uploaded under), to create a job from an upload.

        Owner-checked like every read, and a write: a viewer cannot start jobs. Pass the name to
        :func:`batchyard.data.ingest.detect_format` and as ``source_name`` so the format and messages fit."""
        principal.require_write()
        record = self.get(file_id, principal)
        path = self.storage.path(upload_name(record.id))
        if not path.is_file():
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return path, record.filename

    # -- deleting ---------------------------------------------------------------------------------------------

    def delete(self, file_id: str, principal: Principal) -> FileRecord:
        principal.require_write()
        record = self.get(file_id, principal)
        if not self.store.uploads.delete_file(record.id):  # deleted meanwhile by another request
            raise NotFound(f"no file {file_id!r}", param="file_id")
        self.storage.delete(upload_name(record.id))
        return record
