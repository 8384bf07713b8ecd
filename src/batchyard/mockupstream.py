"""``batchyard mock-upstream``: a fast OpenAI-compatible stub server, for demos, tests and benchmarks.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses`` and ``/v1/moderations`` with deterministic outputs (the same request gets the same answer) and
realistic ``usage`` (about four characters a token), after a latency drawn around ``latency_ms`` (log-normal,
spread ``latency_spread``). It fails only when asked:

- ``error_rate`` / ``rate_limit_rate``: that fraction of requests is answered 500 / 429 (with ``Retry-After:
  retry_after``), drawn at random;
- per request, a ``"mock"`` object in the request body (never echoed back)::

      "mock": {"fail": [429, 500], "retry_after": 0.5, "status": 400, "latency_ms": 2000, "key": "a"}

  ``fail``: the statuses of the first tries of this request (the same ``key``), then success; ``status``: always
  answer that status; ``retry_after``: the 429s' ``Retry-After`` (seconds); ``latency_ms``: this request's latency;
  ``key``: what identifies "this request" (default: its text: the last message, prompt or input).

``GET /_stats`` counts what it answered: ``requests`` received, ``by_status``, ``by_endpoint``, ``by_key``
(answers per key, so a test can check each request was answered once) and ``arrivals`` (when each request with
a ``"mock"`` object came, as Unix times); ``POST /_reset`` zeroes them. ``POST /_gate?open=0`` holds every
request (after its latency) until ``/_gate?open=1``; a request whose client goes away while held or sleeping is
never answered. ``/_echo`` answers any request with what it was; ``/_redirect?to=URL&status=302`` redirects.
With ``api_key`` set, every ``/v1`` request must carry ``Authorization: Bearer <api_key>`` (else 401).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations")
MODELS = ("mock-chat", "mock-embed", "mock-moderation")
MAX_KEY_CHARS = 200
MAX_REPLY_CHARS = 2000
MAX_ARRIVALS_KEPT = 20


@dataclass
class MockOptions:
    latency_ms: float = 0.0
    latency_spread: float = 0.25  # sigma of the log-normal factor (0: always latency_ms)
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    embedding_dimensions: int = 16
    api_key: str | None = None
    seed: int | None = None


@dataclass
class MockStats:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # of requests with a "mock" object only
    started_at: float = field(default_factory=time.time)
    waiting: int = 0  # requests held at the closed gate now

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "waiting": self.waiting,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_endpoint": dict(self.by_endpoint),
            "by_key": dict(self.by_key),
            "arrivals": self.arrivals,
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }


class MockUpstream:
    """The stub's state: options, a random source, counters, and how often each request key was seen."""

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self.random = random.Random(options.seed)
        self.stats = MockStats()
        self._seen: Counter[str] = Counter()
        self._ids = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self.models)
        for path in ENDPOINTS:
            app.router.add_post(path, self.endpoint)
        app.router.add_get("/_stats", self.get_stats)
        app.router.add_post("/_reset", self.reset)
        app.router.add_post("/_gate", self.set_gate)
        app.router.add_get("/healthz", self.health)
        app.router.add_route("*", "/_echo", self.echo)
        app.router.add_route("*", "/_redirect", self.redirect)
        return app

    # -- plumbing -------------------------------------------------------------------------------------------

    def _request_id(self) -> str:
        self._ids += 1
        return f"req_mock_{self._ids:010d}"

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        self.stats.by_status[status] += 1
        all_headers = {"x-request-id": self._request_id()}
        if headers:
            all_headers.update(headers)
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json", headers=all_headers
        )

    def _error(self, status: int, message: str, kind: str, code: str | None = None, **headers: str) -> web.Response:
        return self._answer(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers or None
        )

    async def _sleep(self, mock: dict[str, Any]) -> None:
        mean = mock.get("latency_ms", self.options.latency_ms)
        if not isinstance(mean, int | float) or mean <= 0:
            return
        spread = self.options.latency_spread if "latency_ms" not in mock else 0.0
        factor = self.random.lognormvariate(-spread * spread / 2, spread) if spread > 0 else 1.0
        await asyncio.sleep(min(mean * factor, mean * 4) / 1000.0)

    def _authorized(self, request: web.Request) -> bool:
        key = self.options.api_key
        return key is None or request.headers.get("Authorization") == f"Bearer {key}"

    # -- routes ---------------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def echo(self, request: web.Request) -> web.Response:
        """Any method: what the request was (for the http handler's tests)."""
        self.stats.requests += 1
        self.stats.by_endpoint["/_echo"] += 1
        body = (await request.read()).decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        return self._answer(200, {"method": request.method, "path": request.path_qs, "headers": headers, "body": body})

    async def redirect(self, request: web.Request) -> web.Response:
        """Any method: a redirect to ``?to=URL`` (``&status=307``, default 302)."""
        self.stats.requests += 1
        self.stats.by_endpoint["/_redirect"] += 1
        status = int(request.query.get("status", "302"))
        self.stats.by_status[status] += 1
        return web.Response(status=status, headers={"Location": request.query.get("to", "/_echo")})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_dict())

    async def set_gate(self, request: web.Request) -> web.Response:
        """``?open=0`` holds every request after its latency until ``?open=1`` (a client that goes away while
        held is never answered): lets a test stop a client at a moment when nothing is half answered."""
        if request.query.get("open", "1") in ("0", "false"):
            self.gate.clear()
        else:
            self.gate.set()
        return web.json_response({"open": self.gate.is_set()})

    async def reset(self, request: web.Request) -> web.Response:
        waiting = self.stats.waiting
        self.stats = MockStats()
        self.stats.waiting = waiting
        self._seen.clear()
        return web.json_response({"ok": True})

    async def models(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        self.stats.by_endpoint["/v1/models"] += 1
        if not self._authorized(request):
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        now = int(self.stats.started_at)
        data = [{"id": m, "object": "model", "created": now, "owned_by": "batchyard-mock"} for m in MODELS]
        return self._answer(200, {"object": "list", "data": data})

    async def endpoint(self, request: web.Request) -> web.Response:
        path = request.path
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[path] += 1
        if not self._authorized(request):
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict):
            return self._error(400, "The request body must be a JSON object.", "invalid_request_error")
        mock = body.pop("mock", None)
        mock = mock if isinstance(mock, dict) else {}
        key = str(mock.get("key") or _request_text(path, body))[:MAX_KEY_CHARS]
        if mock:
            times = stats.arrivals.setdefault(key, [])
            if len(times) < MAX_ARRIVALS_KEPT:
                times.append(time.time())
        seen = self._seen[key]
        self._seen[key] = seen + 1
        await self._sleep(mock)
        if not self.gate.is_set():
            stats.waiting += 1
            try:
                await self.gate.wait()  # a client that goes away meanwhile cancels this: never answered
            finally:
                stats.waiting -= 1
        self.stats.by_key[key] += 1  # answered: nothing waits from here on
        injected = self._injected(mock, seen)
        if injected is not None:
            return injected
        if not isinstance(body.get("model"), str) or not body["model"]:
            return self._error(
                400, "you must provide a model parameter", "invalid_request_error", "missing_required_parameter"
            )
        if body.get("stream"):
            return self._error(400, "the mock upstream does not stream", "invalid_request_error", "unsupported")
        return self._answer(200, _ANSWERS[path](self, body))

    def _injected(self, mock: dict[str, Any], seen: int) -> web.Response | None:
        status: Any = mock.get("status")
        fail = mock.get("fail")
        if status is None and isinstance(fail, list) and seen < len(fail):
            status = fail[seen]
        retry_after = mock.get("retry_after", self.options.retry_after)
        if status is None:
            draw = self.random.random()
            if draw < self.options.rate_limit_rate:
                status = 429
            elif draw < self.options.rate_limit_rate + self.options.error_rate:
                status = 500
        if status is None or not isinstance(status, int) or 200 <= status < 300:
            return None
        if status == 429:
            return self._error(
                429,
                "Rate limit reached for requests (mock). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                **{"Retry-After": _seconds(retry_after)},
            )
        if status >= 500:
            return self._error(status, "The server had an error while processing your request (mock).", "server_error")
        return self._error(status, f"mock upstream answered {status} as asked", "invalid_request_error", "mock_error")

    # -- answers --------------------------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _request_text("/v1/chat/completions", body)
        reply = _reply(text, body)
        prompt = _tokens(json.dumps(body.get("messages", ""))) + 3 * _count(body.get("messages"))
        completion = _tokens(reply)
        asked = body.get("n")
        n = asked if isinstance(asked, int) and 1 <= asked <= 8 else 1
        return {
            "id": "chatcmpl-" + _digest(body)[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion * n,
                "total_tokens": prompt + completion * n,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _request_text("/v1/completions", body)
        reply = _reply(text, body)
        prompt, completion = _tokens(text), _tokens(reply)
        return {
            "id": "cmpl-" + _digest(body)[:24],
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "text": reply, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        dims = body.get("dimensions")
        dims = dims if isinstance(dims, int) and 1 <= dims <= 4096 else self.options.embedding_dimensions
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(json.dumps(text), dims)}
            for i, text in enumerate(inputs)
        ]
        prompt = sum(_tokens(text if isinstance(text, str) else json.dumps(text)) for text in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }

    def responses(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _request_text("/v1/responses", body)
        reply = _reply(text, body)
        prompt, completion = _tokens(json.dumps(body.get("input", ""))), _tokens(reply)
        digest = _digest(body)
        return {
            "id": "resp_" + digest[:24],
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body["model"],
            "output": [
                {
                    "type": "message",
                    "id": "msg_" + digest[24:48],
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply, "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            },
        }

    def moderations(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        categories = ("harassment", "hate", "self-harm", "sexual", "violence")
        results = []
        for text in inputs:
            flagged = "forbidden" in json.dumps(text).lower()
            results.append(
                {
                    "flagged": flagged,
                    "categories": {c: flagged and c == "violence" for c in categories},
                    "category_scores": {c: (0.9 if flagged and c == "violence" else 0.001) for c in categories},
                }
            )
        return {"id": "modr-" + _digest(body)[:24], "model": body["model"], "results": results}


_ANSWERS = {
    "/v1/chat/completions": MockUpstream.chat,
    "/v1/completions": MockUpstream.completion,
    "/v1/embeddings": MockUpstream.embeddings,
    "/v1/responses": MockUpstream.responses,
    "/v1/moderations": MockUpstream.moderations,
}


def _request_text(path: str, body: dict[str, Any]) -> str:
    """The request's own text: the last message's content, the prompt or the input."""
    if path == "/v1/chat/completions":
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            content = messages[-1].get("content", "")
            return content if isinstance(content, str) else json.dumps(content)
        return ""
    value = body.get("prompt") if path == "/v1/completions" else body.get("input")
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value)


def _reply(text: str, body: dict[str, Any]) -> str:
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    reply = f"Mock reply to: {text}"[:MAX_REPLY_CHARS]
    if isinstance(limit, int) and limit > 0:
        reply = reply[: limit * 4]
    return reply


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _vector(text: str, dims: int) -> list[float]:
    """A unit vector that depends only on ``text``."""
    seed = hashlib.sha256(text.encode()).digest()
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        values += [v / 2**31 - 1.0 for v in struct.unpack(">8I", block)]
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _seconds(value: Any) -> str:
    number = float(value) if isinstance(value, int | float) else 1.0
    return str(int(number)) if number == int(number) else f"{number:g}"


def run_mock_upstream(host: str, port: int, options: MockOptions, *, on_ready: Any = None) -> None:
    """Serve until interrupted. ``on_ready(url)`` is called once it listens (port 0: the port it got)."""
    import socket

    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(4096)
    bound = sock.getsockname()[1]

    async def main() -> None:
        # handler_cancellation: a request whose client went away stops (and is not answered, nor counted)
        runner = web.AppRunner(MockUpstream(options).app(), access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        shown = f"[{host}]" if ":" in host else host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound}/v1")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
