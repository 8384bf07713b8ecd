"""How many threads the API's blocking work may use at once.

Everything that waits on the database runs in AnyIO's worker threads (a plain ``def`` route or dependency, or
``run_in_threadpool``), and every one of them needs the process's one GIL to do anything. AnyIO allows 40 at once.
Under 50 concurrent requests that meant 40 threads handing the GIL to one another at every database call (the
sqlite3 module lets it go for every row it steps): 60,000 context switches a second, 40 % of the server's CPU in
the kernel, and fewer requests served per second than with a single client. Requests now run in a few threads,
the ones beyond wait their turn in order, and the CPU goes to answering them.

Two kinds of work get limiters of their own:

- Creating a small job mostly waits for the database to commit (on PostgreSQL, for the WAL to reach the disk),
  without the GIL: more of those in flight lets the database commit them together.
- Ingesting an uploaded file or a long inline list can take seconds: a few of those at once must not hold every
  request thread while ordinary requests queue behind them.
"""

from __future__ import annotations

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar

REQUEST_THREADS = 4
SUBMIT_THREADS = 8
BULK_THREADS = 2
BULK_ITEMS = 1000  # an inline list longer than this is ingested on a bulk thread

_submit_limiter: RunVar[CapacityLimiter] = RunVar("batchyard_submit_limiter")
_bulk_limiter: RunVar[CapacityLimiter] = RunVar("batchyard_bulk_limiter")


def limit_request_threads(threads: int = REQUEST_THREADS) -> None:
    """Cap the threads that requests use (AnyIO's default limiter, for the running event loop)."""
    to_thread.current_default_thread_limiter().total_tokens = threads


def submit_limiter() -> CapacityLimiter:
    """For creating a small job (one per event loop)."""
    return _limiter(_submit_limiter, SUBMIT_THREADS)


def bulk_limiter() -> CapacityLimiter:
    """For ingesting a file or a long list of items (one per event loop)."""
    return _limiter(_bulk_limiter, BULK_THREADS)


def _limiter(var: RunVar[CapacityLimiter], threads: int) -> CapacityLimiter:
    try:
        return var.get()
    except LookupError:
        limiter = CapacityLimiter(threads)
        var.set(limiter)
        return limiter
