"""What the world tells running items: their jobs' statuses (the control poll) and their deadlines (the
watchdog). Cancelled jobs stop, paused jobs start nothing new, items past their timeout are interrupted."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING

from batchyard.context import JobControl, ProgressSink
from batchyard.core.lifecycle import STOPPING_JOB_STATUSES, JobStatus
from batchyard.errors import StoreUnavailable
from batchyard.worker.backend import WorkerBackend

if TYPE_CHECKING:
    from batchyard.worker.executor import Executor
    from batchyard.worker.trouble import StoreTrouble

WATCHDOG_INTERVAL = 0.1
CONTROL_POLL_INTERVAL = 0.5


class JobControls:
    """Per job, the :class:`JobControl` its items in this worker share, kept while any of them is held."""

    def __init__(self, progress: ProgressSink | None = None) -> None:
        self.progress = progress  # where the items' ctx.progress reports go
        self._controls: dict[str, JobControl] = {}
        self._items: dict[str, int] = collections.defaultdict(int)

    def hold(self, job_id: str, n: int) -> JobControl:
        """The job's control, for ``n`` more items claimed."""
        control = self._controls.get(job_id)
        if control is None:
            control = self._controls[job_id] = JobControl(job_id, self.progress)
        self._items[job_id] += n
        return control

    def release(self, per_job: collections.Counter[str]) -> None:
        """Items recorded: a job none of whose items is held any more is forgotten."""
        for job_id, n in per_job.items():
            left = self._items[job_id] - n
            if left > 0:
                self._items[job_id] = left
            else:
                self._controls.pop(job_id, None)
                self._items.pop(job_id, None)

    def job_ids(self) -> list[str]:
        return list(self._controls)

    def get(self, job_id: str) -> JobControl | None:
        return self._controls.get(job_id)


class Control:
    """The control poll and the watchdog, two of the worker's side tasks."""

    def __init__(self, store: WorkerBackend, controls: JobControls, executor: Executor, trouble: StoreTrouble) -> None:
        self.store = store
        self.controls = controls
        self.executor = executor
        self._trouble = trouble

    async def poll_loop(self) -> None:
        """Tell in-flight items about their job's status: cancelled jobs stop, paused jobs start nothing new."""
        while True:
            await asyncio.sleep(CONTROL_POLL_INTERVAL)
            asked = self.controls.job_ids()
            if not asked:
                continue
            try:
                statuses = await asyncio.to_thread(self.store.claims.job_statuses, asked)
            except StoreUnavailable as exc:
                self._trouble("status check", exc)
                continue
            self.apply_statuses(asked, statuses)

    def apply_statuses(self, asked: list[str], statuses: dict[str, str]) -> None:
        """Apply the answer about exactly the jobs that were asked about: a job dispatched while the question
        was out is left alone until the next poll. A job that was asked about and is missing was deleted."""
        for job_id in asked:
            control = self.controls.get(job_id)
            if control is None:
                continue
            status = statuses.get(job_id)
            control.paused = status == JobStatus.PAUSED or control.pausing
            stop = status is None or status in STOPPING_JOB_STATUSES
            if stop and not control.cancelled:
                control.cancelled = True
                self.executor.interrupt_async(job_id, "cancel")
            elif not stop:
                control.cancelled = False  # retried after failing: its new items run

    async def watchdog_loop(self) -> None:
        """Enforce per-item timeouts: cancel async items; fail sync ones (their thread is abandoned)."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            self.enforce_deadlines(time.monotonic())

    def enforce_deadlines(self, now: float) -> None:
        executor = self.executor
        executor.interrupt_async(None, "timeout", deadline_before=now)
        for work in executor.running_sync_items():
            if work.deadline is not None and work.deadline < now and work.interrupt is None:
                executor.time_out(work)
