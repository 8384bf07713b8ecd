"""The ``openai`` handler: one OpenAI-format request line per item, forwarded to the upstream for its model.

An item's payload is a batch input line ``{"custom_id", "method", "url", "body"}`` (the job's params carry
``{"endpoint": "/v1/chat/completions"}``). ``body`` is sent with ``method`` to ``url`` on the upstream that
``body["model"]`` routes to (``batchyard.outbound.upstreams``), over this worker's pooled aiohttp session.

- A 2xx answer is the item's result: ``{"status_code", "request_id", "body"}`` (``request_id`` from the
  upstream's ``x-request-id``, else made up); its ``usage`` is added to the job as ``input_tokens``,
  ``output_tokens``, ``total_tokens`` (plus ``cached_tokens`` / ``reasoning_tokens`` when the upstream reports
  them), with the cost from the model's price when the routes file gives one.
- 429, 408, 409 and 5xx answers, timeouts and connection errors are retried inside the attempt up to
  ``BATCHYARD_UPSTREAM_MAX_RETRIES`` times, with backoff that honours ``Retry-After`` (a 429's also pauses the
  whole upstream in this worker). Still failing, the item fails retryably (``code="http_<status>"``,
  ``upstream_timeout`` or ``upstream_unreachable``), so the item's own attempts (``max_attempts``, with the job's
  backoff) take over; a ``Retry-After`` longer than ``BATCHYARD_UPSTREAM_RETRY_WAIT_MAX_SECONDS`` re-queues the
  item at once with that delay instead of holding a lane.
- Any other 4xx is final at once: ``ItemError(code="http_<status>", retryable=False)``.
- An item error from an HTTP answer carries ``detail={"status_code", "request_id", "body"}`` (the body as JSON,
  or as text when it is not JSON); one without an answer carries no detail.
- A model with no upstream fails at once with ``model_not_found``.
Keys go in the ``Authorization`` header only: never in a result, an error or a log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchyard.context import ItemContext
from batchyard.errors import ConfigError, ItemError, PermanentError

if TYPE_CHECKING:
    from batchyard.outbound.retry import Answer
    from batchyard.outbound.upstreams import Route, Routes, Upstream
    from batchyard.registry import HandlerFunction
    from batchyard.settings import Settings

log = logging.getLogger("batchyard.handlers.openai")

HANDLER_NAME = "openai"
# Lanes per worker: the worker's --concurrency is the real knob (and each upstream's max_concurrency).
HANDLER_CONCURRENCY = 4096
MAX_DETAIL_TEXT_CHARS = 20_000
DEFAULT_COMPLETION_TOKENS_ESTIMATE = 256  # for tokens-per-minute budgets when max_tokens is not given


class OpenAIHandler:
    """Holds the routes built from the settings (rebuilt when the settings object changes)."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._routes: tuple[int, float | None, Routes] | None = None

    def routes(self) -> Routes:
        settings = self._settings()
        file = settings.upstreams_file
        mtime = _mtime(file) if file is not None else None
        cached = self._routes
        if cached is not None and cached[0] == id(settings) and cached[1] == mtime:
            return cached[2]
        from batchyard.outbound.upstreams import build_routes, load_routes_file

        document = load_routes_file(file) if file is not None else None
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key is not None else None
        routes = build_routes(
            default_url=settings.upstream_url,
            default_key=key,
            default_concurrency=settings.upstream_concurrency,
            default_timeout=settings.upstream_timeout_seconds,
            document=document,
            source=f"upstreams file {file}" if file is not None else "settings",
        )
        self._routes = (id(settings), mtime, routes)
        return routes

    async def __call__(self, item: Any, ctx: ItemContext) -> dict[str, Any]:
        method, url, body = _request_parts(item, ctx)
        model = body.get("model")
        try:
            route = self.routes().route(model if isinstance(model, str) else None)
        except ConfigError as exc:
            raise ItemError(f"the upstream configuration is invalid: {exc.message}", code="upstream_config") from None
        if route is None:
            raise PermanentError(_no_route_message(model, self.routes()), code="model_not_found")
        return await self._forward(route, method, url, body, ctx)

    async def _forward(
        self, route: Route, method: str, path: str, body: dict[str, Any], ctx: ItemContext
    ) -> dict[str, Any]:
        from batchyard.outbound.client import upstream_client
        from batchyard.outbound.upstreams import display_url

        settings = self._settings()
        upstream = route.upstream
        client = upstream_client(upstream)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        estimate = _estimate_tokens(data, body) if client.limiter.counts_tokens else 0.0
        url = upstream.url_for(path)

        async def send() -> Answer:
            return await client.send(method, url, data, estimate)

        from batchyard.outbound.retry import send_with_retries

        tried = await send_with_retries(
            send,
            max_retries=settings.upstream_max_retries,
            max_wait_seconds=settings.upstream_retry_wait_max_seconds,
            on_retry_after=client.limiter.pause,
            describe=f"upstream {upstream.name!r} ({display_url(upstream.base_url)})",
        )
        answer = tried.answer
        if answer is None:
            raise ItemError(
                f"{tried.error_message} (after {tried.tries} tr{'y' if tried.tries == 1 else 'ies'})",
                code=tried.error_code,
                retryable=True,
            )
        request_id = _request_id(answer.headers)
        if 200 <= answer.status < 300:
            try:
                parsed = json.loads(answer.body)
            except ValueError:
                raise ItemError(
                    f"upstream {upstream.name!r} answered {answer.status} with a body that is not JSON",
                    code="upstream_invalid_response",
                    detail={"status_code": answer.status, "request_id": request_id, "body": _text(answer.body)},
                ) from None
            used = _record_usage(parsed, route, ctx)
            client.limiter.settle(estimate, used)
            return {"status_code": answer.status, "request_id": request_id, "body": parsed}
        from batchyard.core.retries import classify_status

        retryable = classify_status(answer.status) == "retry"
        raise ItemError(
            _failure_message(upstream, answer.status, answer.body, tried.tries),
            code=f"http_{answer.status}",
            retryable=retryable,
            retry_after=tried.retry_after if retryable else None,
            detail={"status_code": answer.status, "request_id": request_id, "body": _json_or_text(answer.body)},
        )


def _request_parts(item: Any, ctx: ItemContext) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(item, dict):
        raise PermanentError("an openai item is a request line: {custom_id, method, url, body}", code="invalid_request")
    body = item.get("body")
    if not isinstance(body, dict):
        raise PermanentError("the request line has no 'body' object", code="invalid_request")
    method = item.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in ("POST", "GET", "DELETE"):
        raise PermanentError(f"unsupported method {method!r}; batch requests use POST", code="invalid_request")
    url = item.get("url") or ctx.params.get("endpoint")
    if not isinstance(url, str) or not url.startswith("/") or "://" in url or ".." in url:
        raise PermanentError(
            f"the request line's url {url!r} is not an endpoint path such as /v1/chat/completions",
            code="invalid_request",
        )
    return method.upper(), url, body


def _no_route_message(model: Any, routes: Routes) -> str:
    if not routes.upstreams:
        return (
            "no upstream is configured: start the worker (or serve) with --upstream URL, set "
            "BATCHYARD_UPSTREAM_URL, or route models in BATCHYARD_UPSTREAMS_FILE"
        )
    return f"no upstream serves model {model!r} (routed models: {', '.join(routes.known_models()) or 'none'})"


def _record_usage(body: Any, route: Route, ctx: ItemContext) -> float:
    """Add the answer's token usage (and its cost) to the item; returns the tokens it used."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0.0
    input_tokens = _count(usage, "prompt_tokens", "input_tokens")
    output_tokens = _count(usage, "completion_tokens", "output_tokens")
    total = _count(usage, "total_tokens") or input_tokens + output_tokens
    counters = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": total}
    cached = _detail(usage, ("prompt_tokens_details", "input_tokens_details"), "cached_tokens")
    if cached:
        counters["cached_tokens"] = cached
    reasoning = _detail(usage, ("completion_tokens_details", "output_tokens_details"), "reasoning_tokens")
    if reasoning:
        counters["reasoning_tokens"] = reasoning
    cost = route.price.cost(input_tokens, output_tokens) if route.price is not None else 0.0
    ctx.add_usage(cost=cost, **counters)
    return total


def _count(usage: dict[str, Any], *names: str) -> float:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return 0.0


def _detail(usage: dict[str, Any], sections: tuple[str, ...], name: str) -> float:
    for section in sections:
        details = usage.get(section)
        if isinstance(details, dict):
            value = _count(details, name)
            if value:
                return value
    return 0.0


def _estimate_tokens(data: bytes, body: dict[str, Any]) -> float:
    """Tokens a request may use, for tokens-per-minute budgets (corrected by the answer's usage): about four
    bytes a token in, ``max_tokens`` (or a default) out."""
    out = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    completion = out if isinstance(out, int) and not isinstance(out, bool) and out > 0 else None
    return len(data) / 4 + (completion or DEFAULT_COMPLETION_TOKENS_ESTIMATE)


def _request_id(headers: Any) -> str:
    value = headers.get("x-request-id") or headers.get("request-id")
    return str(value) if value else f"req_{uuid.uuid4().hex}"


def _text(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= MAX_DETAIL_TEXT_CHARS else text[:MAX_DETAIL_TEXT_CHARS] + "…"


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _text(body)


def _failure_message(upstream: Upstream, status: int, body: bytes, tries: int) -> str:
    """``upstream 'default' answered 400: <the upstream's error message>`` (from its OpenAI error body)."""
    said = ""
    parsed = _json_or_text(body)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
        said = str(message or parsed.get("message") or parsed.get("detail") or "")
    elif isinstance(parsed, str):
        said = parsed
    said = " ".join(said.split())[:500]
    after = f" after {tries} tries" if tries > 1 else ""
    return f"upstream {upstream.name!r} answered {status}{after}" + (f": {said}" if said else "")


def _mtime(path: Any) -> float | None:
    try:
        return float(path.stat().st_mtime)
    except OSError:
        return None


def make_openai_handler(settings: Callable[[], Settings]) -> HandlerFunction:
    """The ``openai`` handler of an app whose settings ``settings()`` returns (read at each item: a command may
    set ``--upstream`` after the app is built)."""
    forwarder = OpenAIHandler(settings)

    async def openai(item: Any, ctx: ItemContext) -> dict[str, Any]:
        """Forward an OpenAI-format request line to the upstream for its model (BATCHYARD_UPSTREAM_URL, routes)."""
        return await forwarder(item, ctx)

    return openai
