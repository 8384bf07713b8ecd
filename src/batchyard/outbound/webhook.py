"""One webhook delivery attempt: a signed POST through the address guard, redirects followed by hand.

The guard is the ``http`` handler's (``outbound/guard.py``): the session resolves names through
:class:`~batchyard.outbound.guard.GuardedResolver` (only allowed addresses are connected to, DNS rebinding cannot
slip past), and :func:`~batchyard.outbound.guard.check_url` checks the scheme and IP literals before the first
request and before every redirect. A redirect (301, 302, 303, 307, 308) is followed with the same POST, body and
signature, at most :data:`MAX_REDIRECTS` times.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from batchyard.core.addresses import AddressRefused
from batchyard.outbound.guard import GuardedResolver, URLRefused, check_url
from batchyard.outbound.session import connector, loop_session

MAX_REDIRECTS = 5
CONNECTIONS_PER_HOST = 16
MAX_ANSWER_BYTES = 64 * 1024  # the receiver's answer is read (and dropped) up to this much
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt got: the final status code (None: no answer) or an error, and how long it took."""

    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _session(allow_private: bool, allowed_networks: tuple[str, ...]) -> aiohttp.ClientSession:
    def make() -> aiohttp.ClientSession:
        resolver = GuardedResolver(allow_private=allow_private, allowed_networks=allowed_networks)
        return aiohttp.ClientSession(
            connector=connector(limit_per_host=CONNECTIONS_PER_HOST, resolver=resolver),
            trust_env=False,  # no proxy from the environment: the address connected to is the one checked
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    return loop_session(("webhook", allow_private, allowed_networks), make)


async def post_signed(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    allowed_networks: Sequence[str] = (),
    timeout_seconds: float,
) -> Attempt:
    """POST ``body`` to ``url`` once (following redirects); never raises for a network or policy failure."""
    networks = tuple(allowed_networks)
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000.0, 1)

    hop = url
    try:
        session = _session(allow_private, networks)
        timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        for _ in range(MAX_REDIRECTS + 1):
            check_url(hop, allow_private=allow_private, allowed_networks=networks)
            async with session.post(hop, data=body, headers=headers, allow_redirects=False, timeout=timeout) as answer:
                location = answer.headers.get("Location")
                if answer.status in REDIRECTS and location:
                    hop = urljoin(hop, location)
                    continue
                await answer.content.read(MAX_ANSWER_BYTES)
                error = None if 200 <= answer.status < 300 else f"answered HTTP {answer.status}"
                return Attempt(answer.status, error, took())
        return Attempt(None, f"more than {MAX_REDIRECTS} redirects", took())
    except (AddressRefused, URLRefused) as refused:
        return Attempt(None, str(refused), took())
    except TimeoutError:
        return Attempt(None, f"no answer within {timeout_seconds:g} s", took())
    except aiohttp.ClientError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, AddressRefused) else exc
        return Attempt(None, f"{type(cause).__name__}: {cause}"[:500], took())
    except OSError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], took())
