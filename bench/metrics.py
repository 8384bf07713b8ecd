"""What recording metrics and log context costs on the worker's hot path, per item, next to the alternatives.

    python bench/metrics.py                  # 2,000-outcome flushes (BATCHYARD_FLUSH_MAX_ITEMS), 200 rounds

Rows, each per item of a flush of N outcomes of one handler:

- ``per flush (Batchyard)``: what the completer does: count (lease, kind) pairs of the batch, then one
  ``Counter.inc`` per (handler, outcome) and one histogram observation per flush (``Completer._record_metrics``).
- ``per item inc``: the alternative, ``ITEMS_PROCESSED.labels(handler, outcome).inc()`` for every outcome.
- ``claim observation``: one histogram observation and one counter step per claim, divided by the claim's items.
- ``log context``: the executor's ``running_item`` / ``done_item`` around each handler call.
- ``reference: json.loads of a small payload``: something every item already pays, for scale.

A benchmark, not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from batchyard import logs, metrics


@dataclass
class Outcome:
    lease_token: str
    kind: str
    job_id: str = "job_bench"
    key: str = "k"
    seq: int = 0


def per_flush(batch: list[Outcome], handler_of: dict[str, str]) -> None:
    kinds = collections.Counter((o.lease_token, o.kind) for o in batch)
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    for (token, kind), n in kinds.items():
        outcomes[handler_of[token], kind] += n
    metrics.record_flush(0.002, outcomes)


def per_item(batch: list[Outcome], handler_of: dict[str, str]) -> None:
    for o in batch:
        metrics.ITEMS_PROCESSED.labels(handler_of[o.lease_token], o.kind).inc()


def timed(fn: Callable[[], None], items: int, rounds: int) -> float:
    """Median nanoseconds per item over ``rounds`` calls of ``fn`` (each covering ``items`` items)."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / items)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="outcomes per flush (default 2000)")
    parser.add_argument("--rounds", type=int, default=200, help="flushes measured (default 200)")
    args = parser.parse_args()
    n = args.items
    handler_of = {f"lease-{i}": "echo" for i in range(4)}
    batch = [Outcome(f"lease-{i % 4}", "succeeded" if i % 10 else "failed", seq=i) for i in range(n)]
    payload = json.dumps({"custom_id": "item-1", "text": "the quick brown fox", "n": 1})

    def claim() -> None:
        metrics.record_claim(0.003, "echo", n)

    def log_context() -> None:
        for o in batch:
            token = logs.running_item(o)
            logs.done_item(token)

    def loads() -> None:
        for _ in range(n):
            json.loads(payload)

    rows = [
        ("per flush (Batchyard)", timed(lambda: per_flush(batch, handler_of), n, args.rounds)),
        ("per item inc (alternative)", timed(lambda: per_item(batch, handler_of), n, args.rounds)),
        ("claim observation (Batchyard)", timed(claim, n, args.rounds)),
        ("log context per item (Batchyard)", timed(log_context, n, args.rounds)),
        ("reference: json.loads of a small payload", timed(loads, n, args.rounds)),
    ]
    table = Table(title=f"Metrics and log context on the hot path ({n:,} outcomes per flush, {args.rounds} rounds)")
    table.add_column("what")
    table.add_column("ns per item (median)", justify="right")
    table.add_column("share of an item at 10,000 items/s", justify="right")
    for name, ns in rows:
        table.add_row(name, f"{ns:,.0f}", f"{ns / 100_000:.2%}")  # 10,000 items/s = 100,000 ns per item
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
