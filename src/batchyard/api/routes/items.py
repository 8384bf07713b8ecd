"""Routes: a job's items, page by page (keyset on the input position), and one item by key with its last error."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.core.cursors import ITEM_CURSOR
from batchyard.core.lifecycle import ItemStatus
from batchyard.wire import ErrorResponse, ItemOut, Page

router = APIRouter(prefix="/api/v1/jobs/{job_id}/items", tags=["items"])

MAX_ITEMS_PAGE = 500


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
    return ITEM_CURSOR.encode(seq)


def decode_cursor(cursor: str) -> int:
    (seq,) = ITEM_CURSOR.decode(cursor)
    return int(seq)


@router.get("", summary="A job's items, in input order", responses=errors(400, 401, 404, 422))
def list_items(
    job_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    status: Annotated[list[ItemStatus] | None, Query(description="Only items in these statuses (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS_PAGE, description="Items per page")] = 100,
    cursor: Annotated[
        str | None, Query(pattern=ITEM_CURSOR.pattern, description="next_cursor of the previous page")
    ] = None,
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
