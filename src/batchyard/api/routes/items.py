"""Routes: a job's items, page by page (keyset on the input position), and one item by key with its last error."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.models import ErrorResponse, Page
from batchyard.app import Batchyard
from batchyard.core.lifecycle import ItemStatus
from batchyard.core.records import ItemRecord, JobRecord
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.auth import Principal
from batchyard.store import Store

router = APIRouter(prefix="/api/v1/jobs/{job_id}/items", tags=["items"])

MAX_ITEMS_PAGE = 500
# Items have no status index, so a status filter reads rows; one page reads at most this many input positions
# and may then come back short (even empty) with has_more=true. Unfiltered pages read exactly one page.
ITEM_SCAN_WINDOW = 50_000
CURSOR_PATTERN = r"^s[0-9a-f]{1,15}$"  # every match is a valid position, so a page never fails on it
_CURSOR = re.compile(CURSOR_PATTERN)


class ItemErrorOut(BaseModel):
    """The item's last error. Handlers' exceptions carry a traceback; lease expiry and cancellation do not."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(None, description="Exception class name, e.g. ValueError, or LeaseExpired")
    message: str | None = None
    code: str | None = Field(None, description="A stable code when the handler or Batchyard gave one")
    attempt: int | None = Field(None, description="The attempt (1-based) that failed")
    retryable: bool | None = None
    traceback: str | None = Field(None, description="The end of the Python traceback, for handler exceptions")


class ItemOut(BaseModel):
    job_id: str
    seq: int = Field(description="0-based position in the job's input")
    key: str = Field(description="The item's key (custom_id), unique in its job")
    status: ItemStatus
    attempts: int = Field(description="Attempts started so far")
    rescues: int = Field(
        0,
        description="Times a worker died while running it: not counted as attempts; at "
        "BATCHYARD_MAX_RESCUES the item is set aside as failed (code poison)",
    )
    payload: Any = Field(None, description="The item as submitted; only when getting one item (null in lists)")
    result: Any = Field(None, description="What the handler returned, once succeeded")
    error: ItemErrorOut | None = Field(None, description="The last error, if an attempt failed")
    started_at: float | None = Field(None, description="Epoch seconds the last attempt started")
    finished_at: float | None = Field(None, description="Epoch seconds the item finished")
    duration_seconds: float | None = Field(None, description="Time of the last attempt, once finished")
    usage: dict[str, float] | None = Field(None, description="Usage counters the handler added")

    @classmethod
    def of(cls, item: ItemRecord) -> ItemOut:
        duration = None
        if item.started_at is not None and item.finished_at is not None:
            duration = max(0.0, item.finished_at - item.started_at)
        return cls(
            job_id=item.job_id,
            seq=item.seq,
            key=item.key,
            status=ItemStatus(item.status),
            attempts=item.attempts,
            payload=item.payload,
            result=item.result,
            error=ItemErrorOut.model_validate(item.error) if item.error else None,
            started_at=item.started_at,
            finished_at=item.finished_at,
            duration_seconds=duration,
            usage=item.usage,
            rescues=item.rescues,
        )


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
