"""One outbound request, tried again on 429, 408, 409, 5xx, timeouts and connection errors (``core/retries.py``).

Short waits happen here, inside the item's attempt: the lane and the lease are kept, nothing goes back to the
database. A wait longer than ``max_wait_seconds`` (a ``Retry-After: 3600``) is not held here: the caller re-queues
the item with that ``retry_after`` so the lane is free meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from batchyard.core.retries import classify_status, parse_retry_after, retry_wait


@dataclass(slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class Tried:
    """How a request ended: the last answer (None if the last try got none), why not, and what it asked."""

    answer: Answer | None
    tries: int
    error_code: str | None = None  # upstream_timeout | upstream_unreachable, when answer is None
    error_message: str = ""
    retry_after: float | None = None  # the wait asked for by the last answer, or the one too long to hold


async def send_with_retries(
    send: Callable[[], Awaitable[Answer]],
    *,
    max_retries: int,
    max_wait_seconds: float,
    on_retry_after: Callable[[float], None] | None = None,
    describe: str = "the upstream",
) -> Tried:
    """Call ``send`` until it gets a 2xx or a final answer, or the retries run out.

    ``on_retry_after`` hears every Retry-After of a 429 (to pause the whole upstream)."""
    tries = 0
    while True:
        tries += 1
        retry_after: float | None = None
        try:
            answer = await send()
        except TimeoutError:
            result = Tried(None, tries, "upstream_timeout", f"{describe} did not answer in time")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            result = Tried(None, tries, "upstream_unreachable", f"could not reach {describe}: {_reason(exc)}")
        else:
            if classify_status(answer.status) != "retry":
                return Tried(answer, tries)
            retry_after = parse_retry_after(answer.headers, time.time())
            if retry_after is not None and answer.status == 429 and on_retry_after is not None:
                on_retry_after(retry_after)
            result = Tried(answer, tries, retry_after=retry_after)
        if tries > max_retries:
            return result
        wait = retry_wait(tries, retry_after)
        if wait > max_wait_seconds:
            result.retry_after = wait
            return result
        await asyncio.sleep(wait)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"
