"""The worker: claims chunks of items, runs them through handlers, and records outcomes in batches.

- :mod:`.supervisor` -- :class:`Worker`: claims chunks, starts the other parts and supervises them;
- :mod:`.executor` -- runs items: async lanes, sync threads, each attempt's outcome;
- :mod:`.completer` -- records outcomes in batched writes; leases and capacity;
- :mod:`.control` -- the jobs' statuses (control poll) and item deadlines (watchdog) told to running items.
"""

from batchyard.worker.completer import Completer, WorkerStats
from batchyard.worker.executor import Executor, WorkItem
from batchyard.worker.redact import PathRedactor
from batchyard.worker.supervisor import Worker

__all__ = ["Completer", "Executor", "PathRedactor", "WorkItem", "Worker", "WorkerStats"]
