"""Routes: a job's items, page by page (keyset on the input position), and one item by key with its last error."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.app import Batchyard
from batchyard.core.lifecycle import ItemStatus
from batchyard.core.records import ItemRecord, JobRecord
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.auth import Principal
from batchyard.store import Store
from batchyard.wire import ErrorResponse, ItemOut, Page

router = APIRouter(prefix="/api/v1/jobs/{job_id}/items", tags=["items"])

MAX_ITEMS_PAGE = 500
# Items have no status index, so a status filter reads rows; one page reads at most this many input positions
# and may then come back short (even empty) with has_more=true. Unfiltered pages read exactly one page.
ITEM_SCAN_WINDOW = 50_000
CURSOR_PATTERN = r"^s[0-9a-f]{1,15}$"  # every match is a valid position, so a page never fails on it
_CURSOR = re.compile(CURSOR_PATTERN)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the error answers a route can give."""
    described = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "The key may not do this",
        404: "No such job or item (or another owner's)",
        409: "Not ready yet",
        422: "Invalid parameter",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


def visible_job(app: Batchyard, job_id: str, principal: Principal) -> JobRecord:
    """The job, if the caller may see it; another owner's job is NotFound exactly like a missing one."""
    if "\x00" in job_id:  # PostgreSQL refuses NUL in text: it is simply not an id
        raise NotFound(f"no job {job_id!r}", param="job_id")
    return app.service.job_record(job_id, principal)


def encode_cursor(seq: int) -> str:
    return f"s{seq:x}"


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidRequest("invalid cursor: pass back the next_cursor of the previous page unchanged", param="cursor")
    return int(cursor[1:], 16)


def read_item_page(
    store: Store, job: JobRecord, statuses: Sequence[str], after_seq: int, limit: int
) -> tuple[list[ItemRecord], int | None]:
    """One page of items after ``after_seq`` and the position the next page starts after (None at the end)."""
    if statuses:
        if not sum(getattr(job, status) for status in statuses):  # the job's counters say: none at all
            return [], None
        max_seq: int | None = after_seq + ITEM_SCAN_WINDOW
    else:
        max_seq = None
    page = store.items.item_page(job.id, after_seq=after_seq, limit=limit + 1, statuses=statuses, max_seq=max_seq)
    if len(page) > limit:
        return page[:limit], page[limit - 1].seq
    if max_seq is not None and max_seq < job.total - 1:  # input positions are 0 .. total-1
        return page, max_seq
    return page, None


@router.get("", summary="A job's items, in input order", responses=errors(401, 404, 422))
def list_items(
    job_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    status: Annotated[list[ItemStatus] | None, Query(description="Only items in these statuses (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS_PAGE, description="Items per page")] = 100,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")] = None,
) -> Page[ItemOut]:
    """Pages follow the input order. With a status filter a page may hold fewer than ``limit`` items while
    ``has_more`` is true: keep following ``next_cursor`` until ``has_more`` is false."""
    job = visible_job(app, job_id, principal)
    statuses = sorted({s.value for s in status or ()})
    after_seq = decode_cursor(cursor) if cursor else -1
    page, next_after = read_item_page(app.store, job, statuses, after_seq, limit)
    return Page[ItemOut](
        data=[ItemOut.of(item) for item in page],
        has_more=next_after is not None,
        next_cursor=None if next_after is None else encode_cursor(next_after),
    )


@router.get(
    "/{key:path}", summary="One item by key, with its payload, result and last error", responses=errors(401, 404)
)
def get_item(job_id: str, key: str, app: BatchyardDep, principal: PrincipalDep) -> ItemOut:
    job = visible_job(app, job_id, principal)
    if "\x00" in key:
        raise NotFound(f"job {job.id!r} has no item {key!r}", param="key")
    return ItemOut.of(app.store.items.get_item(job.id, key))
