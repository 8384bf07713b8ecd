"""Progress inside items: what ``ctx.progress(done, total, message)`` reports, coalesced in memory and written by
the completer's flush loop, at most once per ``progress_interval_ms``, in one transaction for every item that
reported since (never one per call: a handler may report thousands of times a second).

A call costs a dictionary store under a lock (handlers on sync threads report too). Only the latest report of each
item is kept, and it is written once its item has run for one interval: an item that ends sooner (most items of
a big batch) never costs a row, whatever it reported. Once an item whose row was written has finished, the row is
deleted by the next write (and, should this worker die first, by maintenance; readers never show a row whose item
no longer runs under the same lease).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from batchyard.core.records import ProgressReport

ItemKey = tuple[str, int]


class RunningItem(Protocol):
    """What the book reads of an item (the executor's WorkItem, which is also the handler's ``ctx``)."""

    job_id: str
    seq: int
    lease_token: str
    done: bool  # its outcome was reported
    started: float  # monotonic time its handler started


class ProgressBook:
    """The reports not written yet, and the items whose rows exist (to delete once they finish)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[ItemKey, tuple[RunningItem, float, float | None, str | None, float]] = {}
        self._written: dict[ItemKey, RunningItem | None] = {}  # None: finished, its row still to delete

    def report(self, item: RunningItem, done: float, total: float | None, message: str | None) -> None:
        """Keep the item's latest report (from any thread)."""
        entry = (item, done, total, message, time.time())
        key = (item.job_id, item.seq)
        with self._lock:
            self._pending[key] = entry

    @property
    def has_work(self) -> bool:
        return bool(self._pending) or bool(self._written)

    def take(self, min_age: float = 0.0) -> tuple[list[ProgressReport], list[ItemKey]]:
        """The reports to write (of items still running, for ``min_age`` seconds at least) and the items finished
        since their rows were written. Called by the writer only (the event loop). A report of an item younger
        than ``min_age`` waits for the next write: an item that ends sooner never costs a row."""
        with self._lock:
            pending, self._pending = self._pending, {}
        reports = []
        young = {}
        born_before = time.monotonic() - min_age
        for key, entry in pending.items():
            item, done, total, message, at = entry
            if item.done:  # finished meanwhile: nothing to show
                continue
            if item.started > born_before:
                young[key] = entry
                continue
            reports.append(ProgressReport(key[0], key[1], item.lease_token, done, total, message, at))
            self._written[key] = item
        if young:
            with self._lock:
                for key, entry in young.items():
                    self._pending.setdefault(key, entry)  # unless a newer report came meanwhile
        finished = [key for key, item in self._written.items() if item is None or item.done]
        for key in finished:
            del self._written[key]
        return reports, finished

    def put_back(self, reports: list[ProgressReport], finished: list[ItemKey]) -> None:
        """A write failed (the database is away): what it carried goes into the next one, unless newer came."""
        with self._lock:
            for r in reports:
                item = self._written.get((r.job_id, r.seq))
                if item is not None:
                    self._pending.setdefault((r.job_id, r.seq), (item, r.done, r.total, r.message, r.at))
        for key in finished:
            self._written.setdefault(key, None)
