"""A worker's warnings while the database is away: at most one every ``STORE_WARNING_INTERVAL`` seconds."""

from __future__ import annotations

import logging
import time

from batchyard.errors import StoreUnavailable

log = logging.getLogger("batchyard.worker")

STORE_RETRY_SECONDS = 1.0  # after a failed claim or flush (database unavailable)
STORE_WARNING_INTERVAL = 30.0  # at most one warning per this many seconds while the database is away


class StoreTrouble:
    """Shared by a worker's parts: one warning speaks for every failed claim, flush, heartbeat and poll."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._last_warning = 0.0

    def __call__(self, what: str, exc: StoreUnavailable) -> None:
        now = time.monotonic()
        if now - self._last_warning > STORE_WARNING_INTERVAL:
            self._last_warning = now
            log.warning("worker %s: %s failed, retrying: %s", self.worker_id, what, exc.message)
