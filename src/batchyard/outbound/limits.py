"""Per-upstream limits in one worker process: requests in flight, requests and tokens per minute, and the pause
a 429's ``Retry-After`` asks of every request to that upstream (not only the one that got it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from batchyard.core.ratelimit import TokenBucket
from batchyard.outbound.upstreams import Upstream


class UpstreamLimiter:
    """Acquire before each request to an upstream, :meth:`release` after (``settle`` the tokens it used)."""

    def __init__(self, upstream: Upstream, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._slots = asyncio.Semaphore(upstream.max_concurrency)
        self._requests = TokenBucket(upstream.requests_per_minute, now) if upstream.requests_per_minute else None
        self._tokens = TokenBucket(upstream.tokens_per_minute, now) if upstream.tokens_per_minute else None
        self.paused_until = 0.0  # monotonic time: a 429's Retry-After pauses the whole upstream

    @property
    def counts_tokens(self) -> bool:
        return self._tokens is not None

    async def acquire(self, estimated_tokens: float = 0.0) -> None:
        """Wait for a pause to end, a free slot, and room in the per-minute budgets."""
        while (pause := self.paused_until - self._clock()) > 0:
            await asyncio.sleep(pause)
        await self._slots.acquire()
        if self._requests is None and self._tokens is None:
            return
        try:
            now = self._clock()
            wait = self._requests.reserve(1, now) if self._requests is not None else 0.0
            if self._tokens is not None and estimated_tokens > 0:
                wait = max(wait, self._tokens.reserve(estimated_tokens, now))
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            self._slots.release()
            raise

    def release(self) -> None:
        self._slots.release()

    def settle(self, estimated_tokens: float, used_tokens: float) -> None:
        """Correct the token budget once the answer says what a request used."""
        if self._tokens is not None and used_tokens != estimated_tokens:
            self._tokens.refund(estimated_tokens - used_tokens, self._clock())

    def pause(self, seconds: float) -> None:
        """Hold every request to this upstream for ``seconds`` (a 429's Retry-After)."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)
