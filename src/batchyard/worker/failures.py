"""Failed items in the worker's log, rate-limited per job.

An operator tailing a worker's log must see that items fail, and of what, without a million-item job that fails
wholesale flooding it. So, per job: the first :data:`FIRST_LOGGED_PER_JOB` failed items get a WARNING line each
(job id, item key, error type and code, attempt), then at most one summary line per
:data:`SUMMARY_INTERVAL_SECONDS` counts the ones not shown. Neither carries the item's payload nor the error's
message (either may hold the user's data); ``batchyard jobs show`` and ``errors.jsonl`` have the details.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("batchyard.worker")

FIRST_LOGGED_PER_JOB = 10
SUMMARY_INTERVAL_SECONDS = 60.0
JOBS_REMEMBERED = 10_000  # the oldest job's count is forgotten past this (it starts again at one)
MAX_KEY_CHARS = 100


@dataclass(slots=True)
class _JobFailures:
    failed: int = 0
    unreported: int = 0
    last_summary_at: float = 0.0
    latest: str = ""


class FailureLog:
    """Logs failed items at WARNING, rate-limited per job (see the module's docstring). Thread-safe."""

    def __init__(
        self,
        *,
        first_per_job: int = FIRST_LOGGED_PER_JOB,
        interval_seconds: float = SUMMARY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_per_job = first_per_job
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._jobs: OrderedDict[str, _JobFailures] = OrderedDict()
        self._lock = threading.Lock()

    def failed_item(self, job_id: str, key: str, error_json: str, attempt: int) -> None:
        """An item failed for good; ``error_json`` is its error as stored (only its type and code are logged)."""
        error = json.loads(error_json)
        self.failed(job_id, key, str(error.get("type") or "Error"), error.get("code"), attempt)

    def failed(self, job_id: str, key: str, error_type: str, code: str | None, attempt: int) -> None:
        """An item of ``job_id`` failed for good (no retry left, or not retryable)."""
        what = f"{error_type} ({code})" if code and code != error_type else error_type
        shown_key = key if len(key) <= MAX_KEY_CHARS else key[: MAX_KEY_CHARS - 1] + "…"
        now = self._clock()
        with self._lock:
            state = self._jobs.get(job_id)
            if state is None:
                state = self._jobs[job_id] = _JobFailures()
                if len(self._jobs) > JOBS_REMEMBERED:
                    self._jobs.popitem(last=False)
            else:
                self._jobs.move_to_end(job_id)
            state.failed += 1
            if state.failed <= self.first_per_job:
                log.warning(
                    "job %s: item %r failed: %s, attempt %d",
                    job_id,
                    shown_key,
                    what,
                    attempt,
                    extra={"job_id": job_id, "item_key": shown_key, "attempt": attempt, "error_type": error_type}
                    | ({"error_code": code} if code else {}),
                )
                if state.failed == self.first_per_job:
                    state.last_summary_at = now
                    log.warning(
                        "job %s: %d items failed; further failures of this job are counted in one line every %gs",
                        job_id,
                        state.failed,
                        self.interval_seconds,
                        extra={"job_id": job_id},
                    )
                return
            state.unreported += 1
            state.latest = f"item {shown_key!r}: {what}"
            if now - state.last_summary_at >= self.interval_seconds:
                self._summarise(job_id, state, now)

    def flush(self, *, due_only: bool = True) -> None:
        """Write the summary of every job with failures not shown yet: those whose interval has passed, or all."""
        now = self._clock()
        with self._lock:
            for job_id, state in self._jobs.items():
                if state.unreported and (not due_only or now - state.last_summary_at >= self.interval_seconds):
                    self._summarise(job_id, state, now)

    def _summarise(self, job_id: str, state: _JobFailures, now: float) -> None:
        log.warning(
            "job %s: %d more items failed in the last %.0fs (%d in all; latest %s)",
            job_id,
            state.unreported,
            now - state.last_summary_at,
            state.failed,
            state.latest,
            extra={"job_id": job_id},
        )
        state.unreported = 0
        state.last_summary_at = now
