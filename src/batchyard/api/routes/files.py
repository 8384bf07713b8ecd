"""Routes: uploaded files. Upload (multipart, streamed to storage with a size limit), list, get, download, delete.

Uploads are parsed here as they arrive rather than with ``UploadFile``: Starlette's form parser spools the whole
body to a temporary file before the route runs, so an oversized upload would fill the disk before being refused.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.limits import MULTIPART_SLACK_BYTES
from batchyard.app import Batchyard
from batchyard.core.cursors import FILE_CURSOR
from batchyard.errors import InvalidRequest
from batchyard.services.auth import Principal
from batchyard.services.files import (
    DEFAULT_FILENAME,
    DEFAULT_PURPOSE,
    MAX_FILES_PAGE,
    UPLOAD_PURPOSES,
    UploadPurpose,
    too_large,
)
from batchyard.wire import ErrorResponse, FileOut, Page

router = APIRouter(prefix="/api/v1/files", tags=["files"])

MAX_PARTS = 1000  # as Starlette allows; the bytes are bounded by the upload limit anyway
MAX_FIELD_BYTES = 1024
MAX_PART_HEADER_BYTES = 16 * 1024
WRITE_CHUNK_BYTES = 1 << 20  # file bytes are handed to the storage writer (on a thread) in chunks this big
DOWNLOAD_CHUNK_BYTES = 1 << 20
FORM_HINT = "send multipart/form-data with a 'file' part, e.g. curl -F file=@items.jsonl -F purpose=batch"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "The key may only read",
        404: "No such file (or another owner's)",
        413: "Larger than the upload limit",
        422: "Invalid field",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The file; its name is kept for display",
                        },
                        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES), "default": DEFAULT_PURPOSE},
                    },
                }
            }
        },
    }
}


def attachment(filename: str) -> str:
    """A Content-Disposition header that names the download, with an ASCII fallback for old clients."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;%' else "_" for c in filename)
    header = f'attachment; filename="{fallback or DEFAULT_FILENAME}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return header


class FormReader:
    """Reads a multipart/form-data body chunk by chunk: the ``file`` part's bytes are collected for the caller
    to write away (:meth:`take_file_bytes`), the small fields named in ``keep`` are kept in ``fields``, other
    fields are skipped (clients such as the OpenAI SDK send extras like ``expires_after[...]``)."""

    def __init__(self, boundary: bytes, keep: tuple[str, ...] = ("purpose",), hint: str = "") -> None:
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self._keep = frozenset(keep)
        self._hint = hint or FORM_HINT
        self.has_file = False
        self.ended = False
        self._parts = 0
        self._field: str | None = None  # the field of the current part, when it is not the file
        self._in_file = False
        self._value = bytearray()
        self._file_bytes = bytearray()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._disposition = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidRequest(f"malformed multipart body ({exc}); {self._hint}", param="file") from None

    def take_file_bytes(self, at_least: int = 0) -> bytes:
        """The file bytes received since the last call, once there are ``at_least`` of them."""
        if not self._file_bytes or len(self._file_bytes) < at_least:
            return b""
        data = bytes(self._file_bytes)
        self._file_bytes.clear()
        return data

    @property
    def purpose(self) -> str | None:
        return self.fields.get("purpose")

    def finish(self) -> None:
        if not self.ended:
            raise InvalidRequest(f"the multipart body ended before its closing boundary; {self._hint}", param="file")
        if not self.has_file:
            raise _invalid_field("file", "Field required", "missing")

    # -- parser callbacks ------------------------------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(f"too many form fields; {self._hint}", param="file")
        self._field, self._in_file, self._disposition, self._header_bytes = None, False, b"", 0
        self._value.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._count_header(end - start)

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._count_header(end - start)

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise InvalidRequest("a multipart part has oversized headers", param="file")

    def _on_header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            if self.has_file:
                raise InvalidRequest("send one file per upload", param="file")
            self.has_file = self._in_file = True
            raw_name = options.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace") if raw_name else None
        else:
            self._field = name  # other fields are skipped: their bytes are not even kept

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._file_bytes += data[start:end]
        elif self._field in self._keep:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise _invalid_field(self._field, f"at most {MAX_FIELD_BYTES} bytes", "string_too_long")

    def _on_part_end(self) -> None:
        if self._field in self._keep:
            self.fields[self._field] = self._value.decode("utf-8", "replace")
        self._field, self._in_file = None, False

    def _on_end(self) -> None:
        self.ended = True


def _invalid_field(name: str, message: str, type_: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", name), "msg": message, "type": type_}])


def form_boundary(content_type: str | None, hint: str = FORM_HINT) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise InvalidRequest(f"expected a multipart/form-data body with a boundary; {hint}", param="file")
    return boundary


@router.post(
    "",
    status_code=201,
    summary="Upload a file (multipart/form-data)",
    openapi_extra=_UPLOAD_BODY,
    responses=_errors(400, 401, 403, 413, 422),
)
async def upload_file(request: Request, app: BatchyardDep, principal: PrincipalDep) -> FileOut:
    """Streams the ``file`` part to storage while hashing it. Past the upload limit the answer is 413 and
    nothing is kept. Use the returned id to create a job from the file."""
    principal.require_write()
    service = app.files
    limit = service.max_upload_bytes
    form = FormReader(form_boundary(request.headers.get("content-type")))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK_BYTES:
        raise too_large(limit)  # refused before reading a byte
    writer = await run_in_threadpool(service.start_upload, principal)
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + MULTIPART_SLACK_BYTES:
                raise too_large(limit)
            form.feed(chunk)
            if data := form.take_file_bytes(at_least=WRITE_CHUNK_BYTES):
                await run_in_threadpool(writer.write, data)
        form.finish()
        if data := form.take_file_bytes():
            await run_in_threadpool(writer.write, data)
        purpose = DEFAULT_PURPOSE if form.purpose is None else form.purpose
        if purpose not in UPLOAD_PURPOSES:
            raise _invalid_field("purpose", f"Input should be {', '.join(map(repr, UPLOAD_PURPOSES))}", "enum")
        record = await run_in_threadpool(
            service.finish_upload, writer, principal, filename=form.filename, purpose=purpose
        )
    except BaseException:
        writer.abort()  # synchronous on purpose: it must also run when the request is cancelled
        raise
    return FileOut.of(record)


@router.get("", summary="List files, newest first", responses=_errors(400, 401, 422))
def list_files(
    app: BatchyardDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_FILES_PAGE, description="Files per page")] = 100,
    cursor: Annotated[
        str | None, Query(pattern=FILE_CURSOR.pattern, description="next_cursor of the previous page")
    ] = None,
    purpose: Annotated[UploadPurpose | None, Query(description="Only files with this purpose")] = None,
) -> Page[FileOut]:
    """The caller's files (an admin sees every owner's)."""
    records, next_cursor = app.files.list(principal, limit=limit, cursor=cursor, purpose=purpose)
    return Page[FileOut](
        data=[FileOut.of(r) for r in records], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get("/{file_id}", summary="A file's metadata", responses=_errors(401, 404))
def get_file(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> FileOut:
    return FileOut.of(app.files.get(file_id, principal))


@router.get(
    "/{file_id}/content",
    summary="Download a file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **_errors(401, 404),
    },
)
def download_file(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    return file_response(app, file_id, principal)


def file_response(app: Batchyard, file_id: str, principal: Principal) -> StreamingResponse:
    """A stored file's exact bytes, streamed (the native and the OpenAI-compatible download)."""
    stream, record = app.files.open(file_id, principal)
    headers = {
        "Content-Disposition": attachment(record.filename),
        "Content-Length": str(record.bytes),
        "ETag": f'"{record.sha256}"',
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_chunks(stream), media_type="application/octet-stream", headers=headers)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk


@router.delete(
    "/{file_id}", status_code=204, response_class=Response, summary="Delete a file", responses=_errors(401, 403, 404)
)
def delete_file(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> Response:
    """Deletes the file and its bytes. Jobs already created from it keep their items."""
    app.files.delete(file_id, principal)
    return Response(status_code=204)
