"""Retry delays: exponential backoff with full jitter, honouring a server's Retry-After. Pure."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed.

    The ceiling doubles each attempt (base, 2*base, 4*base, ... capped at ``max_seconds``); the delay is drawn
    uniformly from [ceiling/2, ceiling] so retries of a burst spread out without ever retrying at once. A
    ``retry_after`` from the failure wins when it is longer, still capped at ``max_seconds``.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(max_seconds, base_seconds * (2 ** min(attempt - 1, 62)))
    draw = (rng or random).uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None and retry_after > draw:
        return min(max_seconds, retry_after)
    return draw
