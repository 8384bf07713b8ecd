"""Routes: the OpenAI-compatible Files API (``/v1/files``), over the same files as ``/api/v1/files``.

Upload (multipart ``file`` + ``purpose``, streamed to storage like the native upload), list, retrieve, content (the
exact bytes) and delete, answering OpenAI's File objects and OpenAI's error shape. The rules are the files
service's (:mod:`batchyard.services.files`) plus OpenAI's own, in :mod:`batchyard.services.openai_files`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.limits import MULTIPART_SLACK_BYTES
from batchyard.api.routes.files import WRITE_CHUNK_BYTES, FormReader, file_response, form_boundary
from batchyard.openai_wire import OpenAIFile, OpenAIFileDeleted, OpenAIFileList
from batchyard.services.files import UPLOAD_PURPOSES
from batchyard.services.openai_files import (
    EXPIRES_AFTER_FIELDS,
    MAX_FILES_LIST,
    check_upload,
    file_too_large,
    upload_expiry,
)

router = APIRouter(prefix="/v1/files", tags=["openai"])

FORM_HINT = "send multipart/form-data with a 'file' part and a 'purpose' field, as client.files.create(...) does"

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The file (.jsonl for batch)"},
                        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)},
                        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                        "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
                    },
                }
            }
        },
    }
}


@router.post("", summary="Upload a file (OpenAI files.create)", openapi_extra=_UPLOAD_BODY)
async def create_file(request: Request, app: BatchyardDep, principal: PrincipalDep) -> OpenAIFile:
    """A ``batch`` file must be ``.jsonl``; its lines are checked when a batch uses it, as OpenAI does. Over the
    upload limit the answer is 400 "File is too large." and nothing is kept."""
    principal.require_write()
    service = app.files
    limit = service.max_upload_bytes
    form = FormReader(
        form_boundary(request.headers.get("content-type"), FORM_HINT), keep=EXPIRES_AFTER_FIELDS, hint=FORM_HINT
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK_BYTES:
        raise file_too_large()
    writer = await run_in_threadpool(service.start_upload, principal)
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + MULTIPART_SLACK_BYTES:
                raise file_too_large()
            form.feed(chunk)
            if data := form.take_file_bytes(at_least=WRITE_CHUNK_BYTES):
                await run_in_threadpool(writer.write, data)
        form.finish()
        if data := form.take_file_bytes():
            await run_in_threadpool(writer.write, data)
        purpose = check_upload(form.fields.get("purpose"), form.filename)
        expires_at = upload_expiry(purpose, form.fields)
        record = await run_in_threadpool(
            service.finish_upload, writer, principal, filename=form.filename, purpose=purpose, expires_at=expires_at
        )
    except BaseException as exc:
        writer.abort()  # synchronous on purpose: it must also run when the request is cancelled
        if getattr(exc, "code", None) == "file_too_large":
            raise file_too_large() from None
        raise
    return OpenAIFile.of(record)


@router.get("", summary="List files (OpenAI files.list)")
def list_files(
    app: BatchyardDep,
    principal: PrincipalDep,
    purpose: Annotated[str | None, Query(description="Only files with this purpose")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FILES_LIST, description="Files per page")] = MAX_FILES_LIST,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time")] = "desc",
    after: Annotated[str | None, Query(description="The last file id of the previous page")] = None,
) -> OpenAIFileList:
    records, has_more = app.files.list_after(
        principal, after=after, limit=limit, ascending=order == "asc", purpose=purpose
    )
    data = [OpenAIFile.of(r) for r in records]
    return OpenAIFileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/{file_id}", summary="Retrieve a file (OpenAI files.retrieve)")
def retrieve_file(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> OpenAIFile:
    return OpenAIFile.of(app.files.get(file_id, principal))


@router.get(
    "/{file_id}/content",
    summary="A file's content (OpenAI files.content)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's exact bytes",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def file_content(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    return file_response(app, file_id, principal)


@router.delete("/{file_id}", summary="Delete a file (OpenAI files.delete)")
def delete_file(file_id: str, app: BatchyardDep, principal: PrincipalDep) -> OpenAIFileDeleted:
    record = app.files.delete(file_id, principal)
    return OpenAIFileDeleted(id=record.id)
