"""Jobs: create (inline items or an uploaded file, idempotent, optionally waiting), list, get, lifecycle moves,
bulk actions, the event timeline and progress samples."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from batchyard.api.bodies import PlainText, RequestModel
from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.filters import JobFilterDep, JobFilterIn, SortField
from batchyard.api.threads import BULK_ITEMS, bulk_limiter, submit_limiter
from batchyard.app import Batchyard
from batchyard.core.cursors import JOB_SORT_KEYS, job_cursor
from batchyard.core.errorsig import SIGNATURE_PATTERN
from batchyard.core.records import JobQuery, JobRecord
from batchyard.services.auth import Principal
from batchyard.services.bulk import MAX_BULK_JOBS, BulkAction
from batchyard.services.jobs import JobView, check_item_source
from batchyard.wire import (
    BulkOut,
    DataList,
    ErrorResponse,
    EventOut,
    JobOut,
    NotificationOut,
    Page,
    RetryOut,
    SampleOut,
)

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

MAX_INLINE_ITEMS = 10_000
MAX_WAIT_SECONDS = 300.0
MAX_PAGE = 200
WAIT_POLL_SECONDS = 0.05
MAX_EVENT_ID = 2**31 - 1  # job_events.id is a 32-bit integer on PostgreSQL

_E = {"model": ErrorResponse}
READ_ERRORS: dict[int | str, dict[str, Any]] = {401: _E, 404: _E}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {401: _E, 403: _E, 404: _E, 409: _E}


# -- models ---------------------------------------------------------------------------------------------------


class JobCreate(RequestModel):
    """A new job: its items inline (up to 10,000) or from an uploaded file, and how to run them."""

    handler: PlainText = Field(min_length=1, max_length=200, description="Name of a registered handler")
    items: list[Any] | None = Field(
        None, max_length=MAX_INLINE_ITEMS, description="The items, inline; objects may carry `custom_id` or `key`"
    )
    input_file_id: PlainText | None = Field(None, max_length=64, description="An uploaded JSONL or CSV file instead")
    format: Literal["jsonl", "csv"] | None = Field(None, description="Of the uploaded file; default: by its name")
    params: dict[str, Any] | None = Field(None, description="Passed to every item as `ctx.params`")
    description: PlainText | None = Field(None, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] | None = None
    project: PlainText | None = Field(None, max_length=200)
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first")
    scheduled_at: float | None = Field(None, ge=0, description="Do not start before (epoch seconds)")
    max_attempts: int | None = Field(None, ge=1, le=100)
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400, description="Per attempt")
    concurrency: int | None = Field(None, ge=1, le=100_000, description="Items of this job running at once")
    max_failures: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Fail the job when more items than this failed"
    )
    max_failure_rate: float | None = Field(None, gt=0, lt=1, description="Fail the job above this failed share")
    expires_in_seconds: float | None = Field(None, gt=0, le=30 * 86400, description="Completion window")
    webhook_url: PlainText | None = Field(
        None,
        max_length=2000,
        description="Gets this job's job.* events, signed with the owner's default secret "
        "(GET /api/v1/webhooks/secret)",
    )
    notify_emails: list[PlainText] | None = Field(
        None, max_length=20, description="Addresses emailed when the job ends (at most 20)"
    )


# -- create ---------------------------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="Create a job",
    responses={
        200: {"model": JobOut, "description": "An Idempotency-Key replay: the job created the first time"},
        400: _E,
        401: _E,
        403: _E,
        404: _E,
        413: _E,
        422: _E,
    },
)
async def create_job(
    body: JobCreate,
    response: Response,
    app: BatchyardDep,
    principal: PrincipalDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Return once the job finished, or after this many seconds")
    ] = 0,
    idempotency_key: Annotated[str | None, Header(max_length=255, description="Replays return the same job")] = None,
) -> JobOut:
    # The service checks these two as well; here they come first, before the header: 403, then 400, then 422.
    principal.require_write()
    check_item_source(body.items, body.input_file_id)
    if idempotency_key is not None and any(ord(c) < 32 or ord(c) == 127 for c in idempotency_key):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", "Idempotency-Key"),
                    "input": None,
                    "msg": "control characters (such as NUL) are not allowed",
                }
            ]
        )
    # Threads of their own (see api/threads.py): a small job mostly waits for the commit; a file or a long list
    # can take seconds to ingest, and a few of those must not hold every request thread.
    limiter = bulk_limiter() if body.items is None or len(body.items) > BULK_ITEMS else submit_limiter()
    view, created = await anyio.to_thread.run_sync(_create, app, principal, body, idempotency_key, limiter=limiter)
    if not created:
        response.status_code = 200
    if wait:
        view = await _wait_for(app, principal, view, wait)
    return JobOut.of(view)


def _create(app: Batchyard, principal: Principal, body: JobCreate, idempotency_key: str | None) -> tuple[JobView, bool]:
    """(the job, whether it was created now; False: an Idempotency-Key replay). A request is identified by its
    body as parsed, so a replay may differ in spacing or key order."""
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    return app.service.create(
        principal,
        body.handler,
        items=body.items,
        input_file_id=body.input_file_id,
        format=body.format,
        idempotency=(idempotency_key, fingerprint) if idempotency_key else None,
        project=body.project,
        priority=body.priority,
        params=body.params,
        description=body.description,
        tags=body.tags,
        metadata=body.metadata,
        scheduled_at=body.scheduled_at,
        expires_in_seconds=body.expires_in_seconds,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
        concurrency=body.concurrency,
        max_failures=body.max_failures,
        max_failure_rate=body.max_failure_rate,
        webhook_url=body.webhook_url,
        notify_emails=body.notify_emails,
    )


async def _wait_for(app: Batchyard, principal: Principal, view: JobView, seconds: float) -> JobView:
    deadline = time.monotonic() + seconds
    while not view.finished and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_POLL_SECONDS)
        view = await run_in_threadpool(app.service.get, view.job.id, principal)
    return view


# -- read -----------------------------------------------------------------------------------------------------


@router.get(
    "",
    summary="List jobs: filter (statuses, active, handler, project, tag, owner, created range, search), sort, page",
    responses={400: _E, 401: _E, 403: _E, 422: _E},
)
async def list_jobs(
    app: BatchyardDep,
    principal: PrincipalDep,
    where: JobFilterDep,
    sort: Annotated[SortField, Query(description="A column; `-` first for descending")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> Page[JobOut]:
    """Newest first unless `sort` says otherwise; keyset pagination (pass `next_cursor` back as `cursor`, with
    the same filters and sort) returns every matching job exactly once, whatever the offset. A non-admin
    naming another `owner` gets 403."""
    query = JobQuery.of(where, sort=sort, limit=limit + 1, after=_decode_cursor(cursor, sort))
    return await run_in_threadpool(_job_page, app, principal, query, limit)


def _job_page(app: Batchyard, principal: Principal, query: JobQuery, limit: int) -> Page[JobOut]:
    """A page of jobs, built in one trip to a thread (an ``async`` route: a plain ``def`` one also validates its
    answer in another)."""
    views = app.service.list_jobs(query, principal=principal)
    has_more = len(views) > limit
    views = views[:limit]
    next_cursor = _encode_cursor(views[-1].job, query.sort) if has_more and views else None
    return Page[JobOut](data=[JobOut.of(v) for v in views], has_more=has_more, next_cursor=next_cursor)


def _encode_cursor(job: JobRecord, sort: str) -> str:
    return job_cursor(sort).encode(getattr(job, JOB_SORT_KEYS[sort.lstrip("-")].field), job.id)


def _decode_cursor(cursor: str | None, sort: str) -> tuple[Any, str] | None:
    """The (sort value, job id) a cursor made by :func:`_encode_cursor` holds; anything else is a 400."""
    if not cursor:
        return None
    value, job_id = job_cursor(sort).decode(cursor)
    return value, str(job_id)


@router.get("/{job_id}", summary="Get a job", responses=READ_ERRORS)
async def get_job(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> JobOut:
    return await run_in_threadpool(_get_job, app, principal, job_id)


def _get_job(app: Batchyard, principal: Principal, job_id: str) -> JobOut:
    return JobOut.of(app.service.get(job_id, principal))


@router.get("/{job_id}/events", summary="The job's timeline", responses=READ_ERRORS)
def job_events(
    job_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="Only events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> DataList[EventOut]:
    events = app.service.events(job_id, principal, after_id=after, limit=limit)
    return DataList[EventOut](data=[EventOut.of(e) for e in events])


@router.get(
    "/{job_id}/notifications",
    summary="The webhooks and emails the job's events made, and how their delivery stands",
    responses=READ_ERRORS,
)
def job_notifications(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> DataList[NotificationOut]:
    return DataList[NotificationOut](
        data=[NotificationOut.of(m) for m in app.webhooks.job_notifications(job_id, principal)]
    )


@router.get("/{job_id}/progress", summary="Progress samples (done and failed over time)", responses=READ_ERRORS)
def job_progress(
    job_id: str,
    app: BatchyardDep,
    principal: PrincipalDep,
    since: Annotated[float, Query(ge=0, description="Epoch seconds")] = 0,
) -> DataList[SampleOut]:
    samples = app.service.progress(job_id, principal, since=since)
    return DataList[SampleOut](
        data=[SampleOut(at=at, done=done, failed=failed, partial=partial) for at, done, failed, partial in samples]
    )


# -- moves ----------------------------------------------------------------------------------------------------


class Reason(RequestModel):
    reason: PlainText | None = Field(None, max_length=500, description="Shown in the job's timeline")


@router.post("/{job_id}/cancel", summary="Cancel: queued items at once, running ones are told", responses=WRITE_ERRORS)
def cancel_job(job_id: str, app: BatchyardDep, principal: PrincipalDep, body: Reason | None = None) -> JobOut:
    return JobOut.of(app.service.cancel(job_id, principal, reason=body.reason if body else None))


@router.post("/{job_id}/pause", summary="Pause: no new items start; running ones finish", responses=WRITE_ERRORS)
def pause_job(job_id: str, app: BatchyardDep, principal: PrincipalDep, body: Reason | None = None) -> JobOut:
    return JobOut.of(app.service.pause(job_id, principal, reason=body.reason if body else None))


@router.post("/{job_id}/resume", summary="Resume a paused job", responses=WRITE_ERRORS)
def resume_job(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> JobOut:
    return JobOut.of(app.service.resume(job_id, principal))


class RetryRequest(RequestModel):
    error_group: str | None = Field(
        None,
        pattern=SIGNATURE_PATTERN,
        description="Only this error group's failed items (a signature from GET .../error-groups)",
    )
    include: list[PlainText] | None = Field(
        None,
        max_length=10,
        description="Item statuses to queue again: failed, cancelled (an unknown one is a 400). Default: the "
        "failed items; for a cancelled or expired job, its failed and cancelled items (it runs again)",
    )


@router.post(
    "/{job_id}/retry",
    summary="Queue failed (or cancelled) items again; a cancelled or expired job runs again",
    responses={**WRITE_ERRORS, 400: _E, 422: _E},
)
def retry_job(job_id: str, app: BatchyardDep, principal: PrincipalDep, body: RetryRequest | None = None) -> RetryOut:
    """Without a body: the failed items go back to the queue with fresh attempts, and for a cancelled or expired
    job its cancelled items too (it runs again: a ``rerun`` event in its timeline, ``retried`` otherwise).
    `include` chooses the item statuses (failed, cancelled); `error_group` only that group's failed items, the
    job's other failures staying as they are (404 when the group has no failed item). Succeeded and skipped
    items keep their results; the result files are written afresh, with old and new results, when it ends."""
    include, error_group = (body.include, body.error_group) if body else (None, None)
    view, n = app.service.retry(job_id, principal, include=include, error_signature=error_group)
    return RetryOut.of_retry(view, n)


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job and its files", responses=WRITE_ERRORS)
def delete_job(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> Response:
    app.service.delete(job_id, principal)
    return Response(status_code=204)


class BulkRequest(RequestModel):
    """One action on many jobs: by `ids`, or by `filter` (the job list's filters); `dry_run` only counts."""

    action: BulkAction
    ids: list[PlainText] | None = Field(None, min_length=1, max_length=MAX_BULK_JOBS, description="Jobs by id")
    filter: JobFilterIn | None = Field(None, description="Every job matching these filters (as GET /api/v1/jobs)")
    dry_run: bool = Field(
        False, strict=True, description="Only count: `matched`, and `affected` = how many the move applies to"
    )


@router.post(
    "/bulk",
    summary="One action on many jobs: by ids or by filter, with a dry-run count",
    responses={400: _E, 401: _E, 403: _E, 422: _E},
)
async def bulk_action(body: BulkRequest, app: BatchyardDep, principal: PrincipalDep) -> BulkOut:
    """`{"action": "cancel", "filter": {"status": ["active"], "q": "march"}, "dry_run": true}` answers how many
    jobs match and how many of them the move applies to ("all N matching this filter"); the same without
    `dry_run` moves them, at most 10,000 per call (newest first; `remaining` says how many are left), and
    answers each job's outcome: done, skipped (its status does not allow the move), not_found (or another
    owner's). A viewer gets 403; a non-admin naming another `owner` in the filter gets 403."""
    where = body.filter.to_filter() if body.filter is not None else None
    report = await anyio.to_thread.run_sync(
        functools.partial(app.bulk.run, principal, body.action, ids=body.ids, where=where, dry_run=body.dry_run),
        limiter=bulk_limiter(),
    )
    return BulkOut.of(report)
