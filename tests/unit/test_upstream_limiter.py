"""Per-upstream limits in a worker (outbound/limits.py): requests in flight, requests per minute, 429 pauses."""

from __future__ import annotations

import asyncio
import time

from batchyard.outbound.limits import UpstreamLimiter
from batchyard.outbound.upstreams import Upstream


def test_no_more_requests_in_flight_than_the_upstream_allows() -> None:
    limiter = UpstreamLimiter(Upstream("u", "http://h/v1", max_concurrency=3))
    in_flight = peak = 0

    async def request() -> None:
        nonlocal in_flight, peak
        await limiter.acquire()
        try:
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
        finally:
            limiter.release()

    async def main() -> None:
        await asyncio.gather(*(request() for _ in range(20)))

    asyncio.run(main())
    assert peak == 3


def test_requests_per_minute_allow_a_burst_then_pace() -> None:
    limiter = UpstreamLimiter(Upstream("u", "http://h/v1", requests_per_minute=60))  # burst 60, then 1 a second

    async def main() -> list[float]:
        start = time.monotonic()
        done = []
        for _ in range(62):
            await limiter.acquire()
            limiter.release()
            done.append(time.monotonic() - start)
        return done

    done = asyncio.run(main())
    assert done[59] < 0.5  # the burst
    assert done[60] >= 0.9 and done[61] >= 1.9  # then one a second


def test_tokens_per_minute_count_the_estimate_and_settle_on_the_answer() -> None:
    limiter = UpstreamLimiter(Upstream("u", "http://h/v1", tokens_per_minute=600))
    assert limiter.counts_tokens

    async def main() -> float:
        start = time.monotonic()
        await limiter.acquire(estimated_tokens=590)
        limiter.release()
        limiter.settle(590, 10)  # it used 10: 580 come back
        await limiter.acquire(estimated_tokens=500)  # fits at once thanks to the refund
        limiter.release()
        return time.monotonic() - start

    assert asyncio.run(main()) < 0.5


def test_a_pause_holds_every_request_to_the_upstream() -> None:
    limiter = UpstreamLimiter(Upstream("u", "http://h/v1"))

    async def main() -> float:
        limiter.pause(0.3)
        start = time.monotonic()
        await limiter.acquire()
        limiter.release()
        return time.monotonic() - start

    assert 0.28 <= asyncio.run(main()) < 2.0
