"""Waiting on an :class:`asyncio.Event` for at most some seconds, without losing a cancellation.

``asyncio.wait_for(event.wait(), seconds)`` on Python 3.11 swallows a ``task.cancel()`` that arrives in the same
loop iteration as the timeout (or the event): ``wait_for`` returns or raises TimeoutError, the task goes on and is
never cancelled again. A worker's side task looping on it then never ends, and the worker's stop waits for it for
ever. :func:`asyncio.timeout` counts cancellations (``Task.uncancel``) and lets the outside one through.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it is set. A cancellation always propagates."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
