"""Request limits as plain ASGI middleware: bounded bodies (refused while they stream in) and query parameters
that must not repeat."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchyard.errors import BatchyardError
from batchyard.services.files import too_large
from batchyard.services.openai_files import file_too_large

UPLOAD_PATHS = ("/api/v1/files", "/v1/files")
MULTIPART_SLACK_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit. An HTTPException, because FastAPI turns any other
    error met while reading a body into a 400; this one it lets through to be answered 413. ``error``, for an
    upload, is the upload route's own answer: the server may hand the route one chunk that jumps past the route's
    limit and this backstop at once (uvicorn joins what arrived while the route was busy), and the client must get
    the same precise answer either way."""

    def __init__(self, limit: int, what: str, error: BatchyardError | None = None) -> None:
        super().__init__(413, error.message if error is not None else too_large_message(limit, what))
        self.error = error


class BodyLimitMiddleware:
    """413 for a body over the limit: by its Content-Length up front, or by counting a chunked body."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        upload = path.startswith(UPLOAD_PATHS)
        if upload:
            # The upload route refuses an oversized file itself (its limit plus the multipart framing), with a
            # precise message; this is only a backstop behind it, so it leaves the route room to answer first.
            limit = self.max_upload_bytes + 2 * MULTIPART_SLACK_BYTES
        else:
            limit = self.max_request_bytes
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _reject(send, limit, "request body", openai=path.startswith("/v1/"))
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit, self.max_upload_bytes if upload else None, openai=path.startswith("/v1/"))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                return
            if exc.error is not None:
                error = exc.error
                type_ = "invalid_request_error" if path.startswith("/v1/") else type(error).__name__
                await _send_error(send, error.status, error.code, type_, error.message, error.param)
            else:
                await _reject(send, limit, "request body", openai=path.startswith("/v1/"))


def _too_large(limit: int, max_upload_bytes: int | None, *, openai: bool = False) -> BodyTooLarge:
    if max_upload_bytes is None:
        return BodyTooLarge(limit, "request body")
    if openai:  # /v1/files answers as OpenAI does
        return BodyTooLarge(max_upload_bytes, "file", error=file_too_large())
    return BodyTooLarge(max_upload_bytes, "file", error=too_large(max_upload_bytes))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def too_large_message(limit: int, what: str) -> str:
    return f"{what} too large: the limit is {limit:,} bytes"


async def _reject(send: Send, limit: int, what: str, *, openai: bool = False) -> None:
    type_ = "invalid_request_error" if openai else "PayloadTooLarge"  # under /v1/, OpenAI's error types
    await _send_error(send, 413, "too_large", type_, too_large_message(limit, what))


async def _send_error(
    send: Send, status: int, code: str | None, type_: str, message: str, param: str | None = None
) -> None:
    body: dict[str, Any] = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class SingleValuedQueryMiddleware:
    """422 for a query parameter given more than once unless the route takes a list for it (``status=a&status=b``).

    Starlette would silently keep the last value, so ``?owner=a&owner=b`` would answer for ``b`` as if the
    request were well formed. The names that may repeat come from the OpenAPI description (array parameters)."""

    def __init__(self, app: ASGIApp, *, repeatable: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self._repeatable = repeatable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            names = [name for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)]
            repeated = sorted({n for n in names if names.count(n) > 1} - self._repeatable())
            if repeated:
                openai = str(scope.get("path", "")).startswith("/v1/")  # OpenAI answers 400 for a bad parameter
                await _send_error(
                    send,
                    400 if openai else 422,
                    "invalid_value" if openai else "invalid_request",
                    "invalid_request_error" if openai else "InvalidRequest",
                    f"query parameter {repeated[0]!r} was given more than once; give it once",
                    param=repeated[0],
                )
                return
        await self.app(scope, receive, send)
