"""One pooled aiohttp session per event loop (so per worker process), closed when the loop ends.

A worker runs its handlers in one event loop (``asyncio.run`` in ``batchyard worker``, Uvicorn's loop in
``batchyard serve``, a thread's loop in ``submit --wait``). Sessions are bound to a loop, so they are kept per
loop; a small keeper task holds them and, when ``asyncio.run`` cancels what is left at the loop's end, closes
them inside that loop (no "Unclosed client session" warnings, connections shut cleanly).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import aiohttp

# Idle pooled connections are closed after this long (servers commonly drop them at 60-75 s).
KEEPALIVE_SECONDS = 30.0
DNS_CACHE_SECONDS = 10


class _LoopState:
    def __init__(self) -> None:
        self.sessions: dict[Hashable, aiohttp.ClientSession] = {}
        self.objects: dict[Hashable, Any] = {}
        self.keeper: asyncio.Task[None] | None = None


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = _LoopState()
        state.keeper = loop.create_task(_keep(state), name="batchyard-outbound-sessions")
    return state


async def _keep(state: _LoopState) -> None:
    try:
        await asyncio.Event().wait()  # until the loop's end cancels it
    finally:
        sessions = list(state.sessions.values())
        state.sessions.clear()
        state.objects.clear()
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()


def loop_session(key: Hashable, factory: Callable[[], aiohttp.ClientSession]) -> aiohttp.ClientSession:
    """This loop's session for ``key``, made by ``factory`` on first use."""
    state = _state()
    session = state.sessions.get(key)
    if session is None or session.closed:
        session = state.sessions[key] = factory()
    return session


def loop_object(key: Hashable, factory: Callable[[], Any]) -> Any:
    """This loop's object for ``key`` (limiters: asyncio primitives belong to one loop), made on first use."""
    state = _state()
    value = state.objects.get(key)
    if value is None:
        value = state.objects[key] = factory()
    return value


async def close_loop_sessions() -> None:
    """Close this loop's sessions now (tests, or an embedding app that manages its own loop)."""
    loop = asyncio.get_running_loop()
    state = _states.pop(loop, None)
    if state is None:
        return
    if state.keeper is not None:
        state.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.keeper


def connector(*, limit_per_host: int, resolver: aiohttp.abc.AbstractResolver | None = None) -> aiohttp.TCPConnector:
    """A pooled connector: ``limit_per_host`` connections per upstream (host, port), kept alive between requests."""
    return aiohttp.TCPConnector(
        limit=0,  # no cap over all hosts: each upstream has its own (limit_per_host and its limiter)
        limit_per_host=limit_per_host,
        keepalive_timeout=KEEPALIVE_SECONDS,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        resolver=resolver,
    )
