"""Live job changes as Server-Sent Events, fed by the application's one shared poller (:mod:`..events`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.feed import (
    RETRY_MILLISECONDS,
    JobFeed,
    Replay,
    Subscription,
    close_job_feed,
    decode_cursor,
    job_feed,
    sse_frame,
)
from batchyard.wire import ErrorResponse


@contextlib.asynccontextmanager
async def _close_feed_at_shutdown(api: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await close_job_feed(api)


router = APIRouter(tags=["stream"], lifespan=_close_feed_at_shutdown)

KEEPALIVE_FRAME = b": keepalive\n\n"
_EXAMPLE = (
    "retry: 2000\n\nid: YzE6MTcxMDAwMDAwMC4xOmpvYl8wMThlMmE\nevent: job\n"
    'data: {"id":"job_018e2a...","status":"running","counts":{"total":100,"succeeded":42,...},...}\n\n'
    ": keepalive\n\n"
)


def _error(description: str) -> dict[str, Any]:
    # Spelled out: with ``model`` FastAPI would document errors as text/event-stream, the route's media type.
    # ErrorResponse is in the schema components through every other route that documents its errors.
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}}},
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "An endless `text/event-stream`. Each `job` event has the job's cursor as `id` and the job as JSON "
            "(the same shape as `GET /api/v1/jobs/{job_id}`) as `data`. A `: keepalive` comment comes every "
            '15 s. A `resync` event (data: `{"reason": ...}`) means more changed while disconnected than a '
            'replay sends: reload the job list. An `end` event (data: the error shape\'s `{"code": '
            '"unauthenticated", "message": ...}`) comes last when the stream\'s API key was revoked or its '
            "session ended (checked every few seconds); reconnecting then answers 401."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _EXAMPLE}},
    },
    400: _error("A malformed Last-Event-ID"),
    401: _error("No or an invalid API key"),
    404: _error("`job_id` names no job the caller can see"),
    422: _error("A query parameter out of range"),
    503: _error("The server is shutting down, or the database is unreachable"),
}


class EventStreamResponse(StreamingResponse):
    """A never-ending stream that stops as soon as the client goes away, whatever the server's ASGI version,
    and always runs ``on_close`` (even if the client left before the first byte)."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], status_code: int = 200, *, on_close: Callable[[], None]) -> None:
        super().__init__(frames, status_code, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tasks:

                async def stream_then_stop() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-write
                        await self.stream_response(send)
                    tasks.cancel_scope.cancel()

                tasks.start_soon(stream_then_stop)
                await self.listen_for_disconnect(receive)
                tasks.cancel_scope.cancel()
        finally:
            self._on_close()


@router.get(
    "/api/v1/stream",
    summary="Live job changes (Server-Sent Events)",
    response_class=EventStreamResponse,
    responses=RESPONSES,
)
async def stream(
    request: Request,
    app: BatchyardDep,
    principal: PrincipalDep,
    job_id: Annotated[str | None, Query(max_length=100, description="Follow this job only")] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=200,
            description="Resume after this event (browsers send it when they reconnect)",
        ),
    ] = None,
    resume_after: Annotated[
        str | None,
        Query(max_length=200, description="The same as the Last-Event-ID header, for clients that cannot set it"),
    ] = None,
) -> EventStreamResponse:
    """Every change to a job the caller can see: status, counters, throughput, ETA. Admins see every owner's."""
    cursor_text = last_event_id or resume_after
    cursor = None
    if cursor_text:
        cursor = decode_cursor(cursor_text, "Last-Event-ID" if last_event_id else "resume_after")
    if job_id is not None:
        await run_in_threadpool(app.service.job_record, job_id, principal)  # 404 if missing or someone else's
    feed = job_feed(request.app)
    sub = await feed.subscribe(principal, job_id)
    try:
        replay = await feed.replay(sub, cursor) if cursor is not None else Replay()
    except BaseException:
        feed.unsubscribe(sub)
        raise
    return EventStreamResponse(_frames(feed, sub, replay), on_close=lambda: feed.unsubscribe(sub))


async def _frames(feed: JobFeed, sub: Subscription, replay: Replay) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
    if replay.truncated:
        reason = "more jobs changed since Last-Event-ID than a stream replays; reload the job list"
        yield sse_frame("resync", json.dumps({"reason": reason}))
    for replayed in replay.changes:
        yield replayed.frame
    while True:
        change = await sub.next(feed.keepalive)
        if change is not None:
            yield change.frame
        elif sub.closed:
            if sub.ended_because is not None:
                ended = {"code": "unauthenticated", "message": sub.ended_because}
                yield sse_frame("end", json.dumps(ended))
            return
        else:
            yield KEEPALIVE_FRAME
