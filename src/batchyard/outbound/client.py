"""An upstream's pooled client in this event loop: its session, default headers, timeout and limiter."""

from __future__ import annotations

import aiohttp

from batchyard.metrics import upstream_request
from batchyard.outbound.limits import UpstreamLimiter
from batchyard.outbound.retry import Answer
from batchyard.outbound.session import connector, loop_object, loop_session
from batchyard.outbound.upstreams import Upstream


class UpstreamClient:
    """Sends requests to one upstream over this loop's session for it, within its limiter."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.limiter = UpstreamLimiter(upstream)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if upstream.api_key is not None:
            headers["Authorization"] = f"Bearer {upstream.api_key.reveal()}"
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=upstream.timeout_seconds)

    def _session(self) -> aiohttp.ClientSession:
        limit = self.upstream.max_concurrency
        return loop_session(
            ("openai", self.upstream),
            lambda: aiohttp.ClientSession(connector=connector(limit_per_host=limit), trust_env=False),
        )

    async def send(self, method: str, url: str, data: bytes, estimated_tokens: float) -> Answer:
        """One try: wait for the limiter, send, read the whole answer."""
        session = self._session()
        await self.limiter.acquire(estimated_tokens)
        try:
            with upstream_request("openai") as call:  # batchyard_upstream_requests_total, not the limiter's wait
                async with session.request(
                    method, url, data=data, headers=self._headers, timeout=self._timeout, allow_redirects=False
                ) as response:
                    call.status = response.status
                    return Answer(response.status, response.headers, await response.read())
        finally:
            self.limiter.release()


def upstream_client(upstream: Upstream) -> UpstreamClient:
    """This loop's client for ``upstream`` (made on first use)."""
    client: UpstreamClient = loop_object(("openai-client", upstream), lambda: UpstreamClient(upstream))
    return client
