"""When an outbound HTTP request is tried again, and after how long. Pure: no I/O, the clock is a parameter.

The policy of the ``openai`` and ``http`` handlers (DESIGN.md, safety 3): 429, 408, 409 and 5xx answers, timeouts
and connection errors are retried with exponential backoff and jitter; a ``Retry-After`` (or ``retry-after-ms``,
as OpenAI sends) from the upstream wins when it is longer; any other 4xx is final at once.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from typing import Literal

RETRY_BASE_SECONDS = 0.5  # the first retry waits 0.25-0.5 s, as the openai SDK does
RETRY_CAP_SECONDS = 8.0
RETRYABLE_4XX = frozenset({408, 409, 429})

Verdict = Literal["success", "retry", "final"]


def classify_status(status: int) -> Verdict:
    """``success`` for 2xx; ``retry`` for 408, 409, 429 and 5xx; ``final`` for every other answer."""
    if 200 <= status < 300:
        return "success"
    if status in RETRYABLE_4XX or status >= 500:
        return "retry"
    return "final"


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP date
    (relative to ``now``, a Unix time). None when absent or unreadable; never negative."""
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value / 1000.0)
    text = _header(headers, "retry-after")
    if text is None:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: try the other spellings
        value = headers.get(name.title()) or headers.get(name.upper())
    return value


def retry_wait(
    retry: int,
    retry_after: float | None = None,
    *,
    base_seconds: float = RETRY_BASE_SECONDS,
    cap_seconds: float = RETRY_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry number ``retry`` (1-based): drawn from [ceiling/2, ceiling] with the ceiling
    doubling from ``base_seconds`` up to ``cap_seconds``; a longer ``retry_after`` wins (uncapped: the caller
    decides whether to wait that long here or re-queue the item)."""
    if retry < 1:
        raise ValueError("retry is 1-based")
    ceiling = min(cap_seconds, base_seconds * (2 ** min(retry - 1, 62)))
    draw = (rng or random).uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None and retry_after > draw:
        return retry_after
    return draw
