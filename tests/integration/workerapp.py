"""An application for worker subprocesses in crash tests (settings come from BATCHYARD_* variables)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

from batchyard import Batchyard, ItemContext

app = Batchyard()


@app.handler("nap", concurrency=16)
async def nap(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    await asyncio.sleep(item.get("ms", 20) / 1000)
    return {"n": item.get("n"), "attempt": ctx.attempt}


@app.handler("poisonous", concurrency=16)
async def poisonous(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    """Takes its whole worker process down on the item marked ``poison`` (as a crash in native code would)."""
    await asyncio.sleep(item.get("ms", 20) / 1000)
    if item.get("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"n": item.get("n")}


@app.handler("nap_sync", concurrency=4)
def nap_sync(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    time.sleep(item.get("ms", 20) / 1000)
    return {"n": item.get("n")}


if __name__ == "__main__":
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    print("worker ready", flush=True)
    app.run_worker(handlers=names)
