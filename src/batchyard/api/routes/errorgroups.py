"""Routes: a job's failures grouped by error signature, one group, and one group's items as JSONL. Retrying a
group is ``POST /api/v1/jobs/{job_id}/retry`` with ``{"error_group": signature}`` (routes/jobs.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.routes.items import errors
from batchyard.app import Batchyard
from batchyard.core.cursors import ERROR_GROUP_CURSOR
from batchyard.core.errorsig import SIGNATURE_PATTERN
from batchyard.core.records import ItemRecord
from batchyard.services.auth import Principal
from batchyard.wire import ErrorGroupOut, Page

router = APIRouter(prefix="/api/v1/jobs/{job_id}/error-groups", tags=["error groups"])

MAX_GROUPS_PAGE = 100
MAX_SAMPLES = 20
EXPORT_CHUNK_BYTES = 64 * 1024

Signature = Annotated[str, Path(pattern=SIGNATURE_PATTERN, description="The group's signature (hex)")]
Samples = Annotated[int, Query(ge=0, le=MAX_SAMPLES, description="Sample items per group (its first ones)")]


@router.get(
    "",
    summary="The job's failures grouped by error signature, largest group first",
    responses=errors(400, 401, 404, 422),
)
async def list_error_groups(
    job_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS_PAGE)] = 20,
    samples: Samples = 3,
    cursor: Annotated[
        str | None, Query(pattern=ERROR_GROUP_CURSOR.pattern, description="next_cursor of the previous page")
    ] = None,
) -> Page[ErrorGroupOut]:
    """Each group: its signature, the error's type and code, the normalized message (numbers, hex ids, uuids,
    paths, quoted strings, URLs and e-mail addresses masked), how many items failed with it, when the first and
    the latest failed, and sample items. Grouped by the database over the failed items only."""
    after = None
    if cursor:
        count, signature = ERROR_GROUP_CURSOR.decode(cursor)
        after = (int(count), str(signature))
    return await run_in_threadpool(_page, app, principal, job_id, limit, samples, after)


def _page(
    app: Batchyard, principal: Principal, job_id: str, limit: int, samples: int, after: tuple[int, str] | None
) -> Page[ErrorGroupOut]:
    groups, next_after = app.error_groups.page(job_id, principal, limit=limit, after=after, samples=samples)
    return Page[ErrorGroupOut](
        data=[ErrorGroupOut.of(g) for g in groups],
        has_more=next_after is not None,
        next_cursor=None if next_after is None else ERROR_GROUP_CURSOR.encode(*next_after),
    )


@router.get("/{signature}", summary="One error group", responses=errors(401, 404, 422))
def get_error_group(
    job_id: str, signature: Signature, app: BatchyardDep, principal: PrincipalDep, samples: Samples = 3
) -> ErrorGroupOut:
    return ErrorGroupOut.of(app.error_groups.get(job_id, signature, principal, samples=samples))


@router.get(
    "/{signature}/items.jsonl",
    summary="Every failed item of one error group, as JSON lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One line per item in input order: key, seq, attempts, finished_at, error, payload",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **errors(401, 404, 422),
    },
)
def export_error_group(
    job_id: str, signature: Signature, app: BatchyardDep, principal: PrincipalDep
) -> StreamingResponse:
    """Streamed with bounded memory, read page by page; the group and the caller are checked before the first
    byte. Fix the payloads and submit them again, or retry the group."""
    items = app.error_groups.items(job_id, signature, principal)
    return StreamingResponse(
        _lines(items),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-errors-{signature}.jsonl"'},
    )


def _lines(items: Iterator[ItemRecord]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for item in items:
        line = json.dumps(
            {
                "key": item.key,
                "seq": item.seq,
                "attempts": item.attempts,
                "finished_at": item.finished_at,
                "error": item.error,
                "payload": item.payload,
            },
            ensure_ascii=False,
        )
        buffer.append(line + "\n")
        size += len(line) + 1
        if size >= EXPORT_CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8", "surrogatepass")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8", "surrogatepass")
