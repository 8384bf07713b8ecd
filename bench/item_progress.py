"""What ``ctx.progress`` and ``ctx.resources`` cost: a no-op async handler on SQLite in one process, with neither,
reading a worker resource per item, and reporting progress 1 and 100 times per item; plus the cost of one
``ctx.progress`` call alone. The variants run interleaved in the same run (round-robin, ``--repeat`` rounds),
so machine load hits them alike.

    python bench/item_progress.py                       # 20,000 items per run, 3 rounds
    python bench/item_progress.py --items 50000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from batchyard import Batchyard, ItemContext
from batchyard.context import JobControl
from batchyard.worker.progress import ProgressBook

VARIANTS = {
    "plain": "no progress, no resource (the hot path as before)",
    "resource": "ctx.resources['model'] read once per item",
    "progress x1": "ctx.progress once per item",
    "progress x100": "ctx.progress 100 times per item",
}


def build_app(data_dir: Path) -> Batchyard:
    app = Batchyard(data_dir=data_dir)

    @app.resource("model")
    async def model() -> AsyncIterator[dict[str, int]]:
        yield {"weights": 1}

    @app.handler("plain", concurrency=256)
    async def plain(item: dict[str, Any], ctx: ItemContext) -> int:
        return 1

    @app.handler("resource", concurrency=256)
    async def resource(item: dict[str, Any], ctx: ItemContext) -> int:
        return int(ctx.resources["model"]["weights"])

    @app.handler("progress x1", concurrency=256)
    async def progress_once(item: dict[str, Any], ctx: ItemContext) -> int:
        ctx.progress(1, 1, "done")
        return 1

    @app.handler("progress x100", concurrency=256)
    async def progress_often(item: dict[str, Any], ctx: ItemContext) -> int:
        for i in range(100):
            ctx.progress(i, 100, "step")
        return 1

    return app


def run_once(app: Batchyard, handler: str, items: int) -> float:
    """Items per second from submit's end to the job's last item recorded (result files not included)."""
    job = app.submit(handler, ({"n": i} for i in range(items)))
    started = time.perf_counter()
    from batchyard.app import InProcessWorker

    runner = InProcessWorker(app, handlers=[handler], job_ids=[job.id])
    runner.start()
    try:
        while True:
            record = app.store.jobs.get_job(job.id)
            if record.succeeded + record.failed >= items:
                break
            time.sleep(0.005)
    finally:
        runner.stop()
    return items / (time.perf_counter() - started)


def progress_call_ns(calls: int = 200_000) -> float:
    """Nanoseconds per ``ctx.progress`` call into a worker's book (validation, the lock, the dict store)."""
    from batchyard.context import ItemContext as Context

    ctx = Context("job_x", "k", 0, 1, 1, {}, JobControl("job_x", ProgressBook()), None)  # type: ignore[arg-type]
    started = time.perf_counter_ns()
    for i in range(calls):
        ctx.progress(i, calls, "step")
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=150)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp))
        try:
            for round_ in range(args.repeat):
                for name in VARIANTS:
                    rate = run_once(app, name, args.items)
                    rates[name].append(rate)
                    console.log(f"round {round_ + 1}: {name}: {rate:,.0f} items/s")
        finally:
            app.close()
    base = statistics.median(rates["plain"])
    table = Table(title=f"Progress and resources: {args.items:,} no-op items per run, {args.repeat} rounds, SQLite")
    for column in ("variant", "median items/s", "range", "vs plain", "what"):
        table.add_column(column, justify="right" if column not in ("variant", "what") else "left")
    for name, what in VARIANTS.items():
        median = statistics.median(rates[name])
        table.add_row(
            name,
            f"{median:,.0f}",
            f"{min(rates[name]):,.0f} - {max(rates[name]):,.0f}",
            f"{median / base:.2f}x",
            what,
        )
    console.print(table)
    console.print(f"one ctx.progress call: {progress_call_ns():,.0f} ns")


if __name__ == "__main__":
    main()
