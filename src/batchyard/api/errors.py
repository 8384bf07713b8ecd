"""One error shape for every failure: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

A client mistake is never a 5xx: validation problems are 422 (400 for a malformed body), unknown routes 404.

Under ``/v1/`` (the OpenAI-compatible API) the shape is OpenAI's exactly: the same four keys and nothing else,
``type`` one of OpenAI's (``invalid_request_error`` for every client mistake, ``server_error``), and invalid
parameters are 400 with ``missing_required_parameter`` or ``invalid_value``, as OpenAI answers them.
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


OPENAI_PREFIX = "/v1/"


def error_body(message: str, type_: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


def is_openai_path(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PREFIX)


def openai_error(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {message, type, param, code}}``."""
    if status == 401:
        type_, code = "invalid_request_error", "invalid_api_key"
    elif status >= 500:
        type_ = "server_error"
    else:
        type_ = "invalid_request_error"
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _openai_batchyard_error(exc: BatchyardError) -> dict[str, Any]:
    message = exc.message
    if isinstance(exc, StoreUnavailable):  # the driver's reason names the database's host: logged, not sent
        message = "the database is unavailable; try again in a moment"
    return openai_error(exc.status, message, exc.code, exc.param)


def _openai_validation_error(errors: list[Any]) -> dict[str, Any]:
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(location) or None
    kind = first.get("type")
    if kind == "missing" and param:
        return openai_error(400, f"Missing required parameter: '{param}'.", "missing_required_parameter", param)
    if kind == "json_invalid":
        return openai_error(
            400, "We could not parse the JSON body of your request; send a JSON object.", "invalid_json"
        )
    if param is None:
        return openai_error(400, f"Invalid request: {first.get('msg', 'invalid')}.", "invalid_value")
    return openai_error(400, f"Invalid value for '{param}': {first.get('msg', 'invalid')}.", "invalid_value", param)


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
        if is_openai_path(request):
            return ErrorJSONResponse(_openai_batchyard_error(exc), status_code=exc.status, headers=headers)
        error = exc.to_dict()
        if isinstance(exc, StoreUnavailable):  # the driver's reason names the database's host: logged, not sent
            error["message"] = "the database is unavailable; try again in a moment"
        return ErrorJSONResponse({"error": error}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if is_openai_path(request):
            return ErrorJSONResponse(_openai_validation_error(list(errors)), status_code=400)
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
        body, headers = _http_error_answer(request, exc)
        return ErrorJSONResponse(body, status_code=exc.status_code, headers=headers or None)


def _http_error_answer(request: Request, exc: StarletteHTTPException) -> tuple[dict[str, Any], dict[str, str]]:
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
    body = openai_error(exc.status_code, message, code) if is_openai_path(request) else error_body(message, type_, code)
    return body, headers


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
