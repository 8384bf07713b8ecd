"""One error shape for every failure: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

A client mistake is never a 5xx: validation problems are 422 (400 for a malformed body), unknown routes 404.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from batchyard.api.limits import BodyTooLarge
from batchyard.errors import BatchyardError, StoreUnavailable

log = logging.getLogger("batchyard.api")


def error_body(message: str, type_: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


class ErrorJSONResponse(JSONResponse):
    """An error answer that always renders: a message quoting odd text (a lone surrogate) is sent ASCII-escaped
    instead of failing into a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BatchyardError)
    async def batchyard_error(request: Request, exc: BatchyardError) -> JSONResponse:
        if exc.status >= 500 and request.url.path != "/readyz":  # a probe's answer; the cause is logged
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        error = exc.to_dict()
        if isinstance(exc, StoreUnavailable):  # the driver's reason names the database's host: logged, not sent
            error["message"] = "the database is unavailable; try again in a moment"
        return ErrorJSONResponse({"error": error}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        param = ".".join(location) or None
        message = first.get("msg", "invalid request")
        if param:
            message = f"{param}: {message}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        status = 400 if first.get("type") == "json_invalid" else 422
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")} for e in errors[:20]
        ]
        return ErrorJSONResponse(
            error_body(message, "InvalidRequest", "invalid_request", param, details=details), status_code=status
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge) and exc.error is not None:  # an upload: the route's own answer
            return await batchyard_error(request, exc.error)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthenticated",
            403: "forbidden",
            413: "too_large",
            429: "rate_limited",
        }.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on this path; list every one.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
        type_ = "PayloadTooLarge" if exc.status_code == 413 else "HTTPError"
        return ErrorJSONResponse(error_body(message, type_, code), status_code=exc.status_code, headers=headers or None)


_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path, from the OpenAPI description (built once per app)."""
    table = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"),
                {m.upper() for m in operations} & _HTTP_METHODS,
            )
            for path, operations in request.app.openapi()["paths"].items()
        ]
        request.app.state.allow_table = table
    path = request.url.path
    exact = request.app.openapi()["paths"].get(path)
    if exact is not None:  # a literal route (/jobs/bulk) names its resource better than a template (/jobs/{id})
        return sorted({m.upper() for m in exact} & _HTTP_METHODS)
    methods: set[str] = set()
    for pattern, allowed in table:
        if pattern.match(path):
            methods |= allowed
    return sorted(methods)
