"""A guarded fetch for the ``http`` handler: address checks on every hop, redirects followed by hand, retries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from batchyard.core.addresses import AddressRefused
from batchyard.core.retries import classify_status
from batchyard.errors import ItemError, PermanentError
from batchyard.metrics import upstream_request
from batchyard.outbound.guard import GuardedResolver, URLRefused, check_url
from batchyard.outbound.retry import Answer, send_with_retries
from batchyard.outbound.session import connector, loop_session

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 20_000
CONNECTIONS_PER_HOST = 256
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DROPPED_ON_CROSS_ORIGIN = ("authorization", "cookie", "proxy-authorization")


class TooManyRedirects(Exception):
    pass


class ResponseTooLarge(Exception):
    pass


def _session(allow_private: bool, allowed_networks: tuple[str, ...]) -> aiohttp.ClientSession:
    def make() -> aiohttp.ClientSession:
        resolver = GuardedResolver(allow_private=allow_private, allowed_networks=allowed_networks)
        return aiohttp.ClientSession(
            connector=connector(limit_per_host=CONNECTIONS_PER_HOST, resolver=resolver),
            trust_env=False,  # no proxy from the environment: the address connected to is the one checked
            cookie_jar=aiohttp.DummyCookieJar(),  # items are independent: no cookies carried between them
        )

    return loop_session(("http", allow_private, allowed_networks), make)


async def fetch(
    method: str,
    url: str,
    headers: dict[str, str],
    data: bytes | None,
    *,
    allow_private: bool,
    allowed_networks: Sequence[str] = (),
    timeout_seconds: float,
    max_retries: int,
    max_wait_seconds: float,
) -> dict[str, Any]:
    """Send the request (retrying as ``outbound/retry.py`` says); the item's result, or an ItemError."""
    networks = tuple(allowed_networks)
    session = _session(allow_private, networks)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    final_url = url

    async def send() -> Answer:
        nonlocal final_url
        hop_method, hop_url, hop_headers, hop_data = method, url, dict(headers), data
        for _ in range(MAX_REDIRECTS + 1):
            check_url(hop_url, allow_private=allow_private, allowed_networks=networks)
            with upstream_request("http") as call:  # batchyard_upstream_requests_total
                async with session.request(
                    hop_method, hop_url, headers=hop_headers, data=hop_data, allow_redirects=False, timeout=timeout
                ) as response:
                    call.status = response.status  # a redirect counts as one request, its target as another
                    location = response.headers.get("Location")
                    if response.status in REDIRECTS and location:
                        next_url = urljoin(hop_url, location)
                        if response.status == 303 or (response.status in (301, 302) and hop_method == "POST"):
                            hop_method, hop_data = ("GET" if hop_method != "HEAD" else "HEAD"), None
                            hop_headers = {k: v for k, v in hop_headers.items() if k.lower() != "content-type"}
                        if _origin(next_url) != _origin(hop_url):
                            hop_headers = {
                                k: v for k, v in hop_headers.items() if k.lower() not in _DROPPED_ON_CROSS_ORIGIN
                            }
                        hop_url = next_url
                        continue
                    final_url = hop_url
                    return Answer(response.status, response.headers, await _read_limited(response))
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {_shown(url)}")

    try:
        tried = await send_with_retries(
            send, max_retries=max_retries, max_wait_seconds=max_wait_seconds, describe=_shown(url)
        )
    except (AddressRefused, URLRefused) as refused:
        raise PermanentError(str(refused), code="url_refused") from None
    except TooManyRedirects as exc:
        raise PermanentError(str(exc), code="too_many_redirects") from None
    except ResponseTooLarge as exc:
        raise PermanentError(str(exc), code="response_too_large") from None
    answer = tried.answer
    if answer is None:
        raise ItemError(f"{tried.error_message} (after {tried.tries} tries)", code=tried.error_code)
    body = answer_body(answer)
    if 200 <= answer.status < 300:
        return {"status_code": answer.status, "url": final_url, "headers": dict(answer.headers), "body": body}
    request_id = answer.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
    retryable = classify_status(answer.status) == "retry"
    after = f" after {tried.tries} tries" if tried.tries > 1 else ""
    raise ItemError(
        f"{_shown(final_url)} answered {answer.status}{after}",
        code=f"http_{answer.status}",
        retryable=retryable,
        retry_after=tried.retry_after if retryable else None,
        detail={"status_code": answer.status, "request_id": request_id, "body": body},
    )


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(f"the answer is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _shown(url: str) -> str:
    """The URL for a message: no user:password, no query (it may carry tokens)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"[:300]


def answer_body(answer: Answer) -> Any:
    """The answer's body as JSON when it says it is JSON (and is), else as text (cut at MAX_TEXT_CHARS)."""
    content_type = str(answer.headers.get("Content-Type", "")).lower()
    if "json" in content_type:
        try:
            return json.loads(answer.body)
        except ValueError:
            pass
    text = answer.body.decode("utf-8", "replace")
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"
