"""PostgreSQL LISTEN: an async iterator of wake-ups for workers in any process on any machine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sqlalchemy.engine import make_url

from batchyard.store.wakeups import NOTIFY_CHANNEL

log = logging.getLogger("batchyard.notify")
RECONNECT_SECONDS = 2.0


def _conninfo(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def listen(url: str) -> AsyncIterator[None]:
    """Yield once per notification on the work channel; reconnects (with a wake-up) if the connection drops."""
    import psycopg

    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(_conninfo(url), autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                yield None  # anything sent while we were not listening
                async for _ in conn.notifies():
                    yield None
        except psycopg.OperationalError as exc:
            log.warning("LISTEN connection lost (%s); retrying in %.0fs", exc, RECONNECT_SECONDS)
            await asyncio.sleep(RECONNECT_SECONDS)
