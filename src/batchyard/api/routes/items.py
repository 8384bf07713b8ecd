"""Routes: a job's items, page by page (keyset on the input position), and one item by key with its last error."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.core.lifecycle import ItemStatus
from batchyard.errors import InvalidRequest
from batchyard.wire import ErrorResponse, ItemOut, Page

router = APIRouter(prefix="/api/v1/jobs/{job_id}/items", tags=["items"])

MAX_ITEMS_PAGE = 500
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


def encode_cursor(seq: int) -> str:
    return f"s{seq:x}"


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidRequest("invalid cursor: pass back the next_cursor of the previous page unchanged", param="cursor")
    return int(cursor[1:], 16)


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
    statuses = sorted({s.value for s in status or ()})
    after_seq = decode_cursor(cursor) if cursor else -1
    page, next_after = app.items.page(job_id, principal, statuses=statuses, after_seq=after_seq, limit=limit)
    return Page[ItemOut](
        data=[ItemOut.of(item) for item in page],
        has_more=next_after is not None,
        next_cursor=None if next_after is None else encode_cursor(next_after),
    )


@router.get(
    "/{key:path}", summary="One item by key, with its payload, result and last error", responses=errors(401, 404)
)
def get_item(job_id: str, key: str, app: BatchyardDep, principal: PrincipalDep) -> ItemOut:
    return ItemOut.of(app.items.get(job_id, key, principal))
