"""Demo handlers, so Batchyard can be tried with nothing else installed.

They are opt-in: an app offers them only when built with ``Batchyard(demo_handlers=True)``, which the CLI does when
no ``--app`` is given (or with ``--demo``). A production worker must never pick up a job for ``flaky``.
"""

from __future__ import annotations

import random
from typing import Any

from batchyard.context import ItemContext
from batchyard.errors import ItemError
from batchyard.registry import HandlerRegistry


async def echo(item: Any, ctx: ItemContext) -> Any:
    """Return the item unchanged (a no-op, for trying things and for benchmarks)."""
    return item


async def sleep(item: Any, ctx: ItemContext) -> dict[str, Any]:
    """Sleep for ``ms`` milliseconds (from the item, else the job's params, else 100), then return it."""
    import asyncio  # here, not at the top: the CLI registers these handlers for commands that never run them

    ms = _number(item, ctx, "ms", 100.0)
    await asyncio.sleep(ms / 1000.0)
    return {"slept_ms": ms}


async def flaky(item: Any, ctx: ItemContext) -> dict[str, Any]:
    """Fail with probability ``failure_rate`` (item or params, default 0.3); retryable unless ``permanent``."""
    rate = _number(item, ctx, "failure_rate", 0.3)
    ms = _number(item, ctx, "ms", 0.0)
    if ms:
        import asyncio

        await asyncio.sleep(ms / 1000.0)
    if random.random() < rate:
        permanent = bool(ctx.params.get("permanent") or (isinstance(item, dict) and item.get("permanent")))
        raise ItemError(f"simulated failure (failure_rate={rate})", retryable=not permanent, code="flaky")
    return {"ok": True, "attempt": ctx.attempt}


def _number(item: Any, ctx: ItemContext, name: str, default: float) -> float:
    if isinstance(item, dict) and isinstance(item.get(name), int | float):
        return float(item[name])
    value = ctx.params.get(name)
    return float(value) if isinstance(value, int | float) else default


# name -> (function, items in flight per worker process)
DEMO_HANDLERS = {"echo": (echo, 1000), "sleep": (sleep, 256), "flaky": (flaky, 256)}


def register_demo_handlers(registry: HandlerRegistry) -> None:
    """Add ``echo``, ``sleep`` and ``flaky`` to ``registry``, keeping any handler of the same name already there."""
    for name, (function, concurrency) in DEMO_HANDLERS.items():
        if name not in registry:
            registry.register(name, function, concurrency=concurrency)
