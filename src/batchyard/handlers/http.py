"""The ``http`` handler: one HTTP request per item, with the retry policy of the ``openai`` handler.

An item is ``{"url", "method" (GET), "headers" ({}), "body" (none)}``: a string body is sent as it is, any other
JSON value as JSON (``Content-Type: application/json`` unless the headers say otherwise). The result is
``{"status_code", "url" (after redirects), "headers", "body"}`` with the body as JSON when the answer says it is
JSON, else as text.

Only http(s) URLs, and only to public addresses: loopback, private, link-local and other non-global targets are
refused unless ``BATCHYARD_ALLOW_PRIVATE_URLS=true`` (or their network is in
``BATCHYARD_ALLOWED_PRIVATE_NETWORKS``), and cloud metadata addresses (169.254.169.254, ``fd00:ec2::254``, ...)
always. The check runs after DNS resolution, on the address connected to (``outbound/guard.py``), and again on
every redirect, which this handler follows itself (at most 5 hops; ``Authorization`` and
``Cookie`` are dropped when a redirect leaves the origin). A refusal fails the item at once with code
``url_refused``.

429, 408, 409 and 5xx answers, timeouts and connection errors are retried as the ``openai`` handler does; any
other 4xx fails the item at once with ``code="http_<status>"`` and ``detail={"status_code", "request_id", "body"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchyard.context import ItemContext
from batchyard.errors import PermanentError

if TYPE_CHECKING:
    from batchyard.registry import HandlerFunction
    from batchyard.settings import Settings

HANDLER_NAME = "http"
HANDLER_CONCURRENCY = 4096  # the worker's --concurrency is the knob
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def make_http_handler(settings: Callable[[], Settings]) -> HandlerFunction:
    """The ``http`` handler of an app whose settings ``settings()`` returns."""

    async def http(item: Any, ctx: ItemContext) -> dict[str, Any]:
        """One HTTP request per item: {url, method, headers, body}; public addresses only unless allowed."""
        from batchyard.outbound.fetch import fetch

        method, url, headers, data = _request_parts(item)
        current = settings()
        return await fetch(
            method,
            url,
            headers,
            data,
            allow_private=current.allow_private_urls,
            allowed_networks=tuple(current.allowed_private_networks),
            timeout_seconds=current.upstream_timeout_seconds,
            max_retries=current.upstream_max_retries,
            max_wait_seconds=current.upstream_retry_wait_max_seconds,
        )

    return http


def _request_parts(item: Any) -> tuple[str, str, dict[str, str], bytes | None]:
    if not isinstance(item, dict):
        raise PermanentError("an http item is an object: {url, method, headers, body}", code="invalid_request")
    url = item.get("url")
    if not isinstance(url, str) or not url:
        raise PermanentError("the item has no 'url' string", code="invalid_request")
    method = item.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise PermanentError(f"method {method!r} is not one of {', '.join(METHODS)}", code="invalid_request")
    raw_headers = item.get("headers") or {}
    if not isinstance(raw_headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_headers.items()
    ):
        raise PermanentError("'headers' must be an object of strings", code="invalid_request")
    headers = dict(raw_headers)
    data: bytes | None = None
    if "body" in item and item["body"] is not None:
        body = item["body"]
        if isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
    return method.upper(), url, headers, data
