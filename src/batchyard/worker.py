"""The worker: claims chunks of items, runs them through handlers, and flushes outcomes in batches.

A small async state machine. Side tasks (flusher, heartbeat, control poll, watchdog, maintenance) are supervised:
if one crashes, the worker stops loudly. The fetch loop waits on whichever comes first: a wake-up, the poll
interval, or stop. Async handlers run in long-lived lanes (no task per item); sync handlers run in threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import queue
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchyard.backoff import backoff_delay
from batchyard.context import ItemContext, JobControl
from batchyard.errors import ItemCancelled, ItemError, StoreUnavailable, WorkerCrashed
from batchyard.lifecycle import STOPPING_JOB_STATUSES, JobStatus, after_failure, skip_reason
from batchyard.maintenance import Maintenance
from batchyard.registry import HandlerRegistry, HandlerSpec
from batchyard.settings import Settings
from batchyard.storable import json_text, storable
from batchyard.storage import LocalStorage
from batchyard.store import Store
from batchyard.store.claims import CompletionReport
from batchyard.store.records import ClaimBatch, ClaimedItem, ClaimedJob, Outcome

log = logging.getLogger("batchyard.worker")

WATCHDOG_INTERVAL = 0.1
FINAL_FLUSH_TRIES = 10
STORE_RETRY_SECONDS = 1.0  # after a failed claim or flush (database unavailable)
STORE_WARNING_INTERVAL = 30.0  # at most one warning per this many seconds while the database is away
CONTROL_POLL_INTERVAL = 0.5
MAX_TRACEBACK_CHARS = 8000


class WorkItem(ItemContext):
    """One claimed item on its way through a handler. It is also the handler's ``ctx``: one object per item."""

    __slots__ = ("_deadline", "_done", "_interrupt", "_job", "_payload", "_spec", "_started", "_token")

    def __init__(self, job: ClaimedJob, item: ClaimedItem, token: str, spec: HandlerSpec, control: JobControl,
                 storage: LocalStorage, timeout: float | None) -> None:
        # ItemContext's fields, set here directly: this runs once per item on the hot path.
        self.job_id = job.id
        self.key = item.key
        self.seq = item.seq
        self.attempt = item.attempt
        self.max_attempts = job.max_attempts
        self.params = job.params
        self._control = control
        self._storage = storage
        self.timed_out = False
        self.cost = 0.0
        self.usage = None
        self._job = job
        self._payload = item.payload
        self._token = token
        self._spec = spec
        self._started = 0.0
        self._deadline = timeout  # seconds until started, then an absolute monotonic time
        self._interrupt: str | None = None  # "cancel" | "timeout" | "shutdown"
        self._done = False


@dataclass
class WorkerStats:
    claimed: int = 0
    flushed: int = 0
    accepted: int = 0


class Worker:
    """Runs items of every job whose handler it knows, until :meth:`request_stop`."""

    def __init__(self, store: Store, storage: LocalStorage, registry: HandlerRegistry, settings: Settings, *,
                 handlers: list[str] | None = None, concurrency: int | None = None, worker_id: str | None = None,
                 run_maintenance: bool = True) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.registry = registry
        names = handlers or registry.names()
        self.handlers = {name: registry.get(name) for name in names}
        self.concurrency = concurrency or settings.worker_concurrency
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.run_maintenance = run_maintenance
        self.stats = WorkerStats()
        self._lanes = {name: min(spec.concurrency, self.concurrency) for name, spec in self.handlers.items()}
        self._outstanding = dict.fromkeys(self.handlers, 0)
        self._in_flight_total = 0
        self._lease_left: dict[str, int] = {}
        self._lease_handler: dict[str, str] = {}
        self._controls: dict[str, JobControl] = {}
        self._control_items: dict[str, int] = collections.defaultdict(int)
        self._outcomes: collections.deque[Outcome] = collections.deque()
        self._outcome_lock = threading.Lock()
        self._running_async: dict[tuple[str, int], tuple[WorkItem, asyncio.Task[Any]]] = {}
        self._running_sync: dict[int, WorkItem] = {}
        # Async lanes take work from a deque and sleep on an event when it is empty: cheaper per item than
        # asyncio.Queue, which matters at tens of thousands of items per second.
        self._async_work: dict[str, collections.deque[WorkItem | None]] = {}
        self._async_ready: dict[str, asyncio.Event] = {}
        self._sync_queues: dict[str, queue.SimpleQueue[WorkItem | None]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._draining = False
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._flush_now: asyncio.Event | None = None
        self._maintain_now: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._flush_lock = asyncio.Lock()
        self._last_store_warning = 0.0
        self._remove_wake: Callable[[], None] | None = None
        self._crash: tuple[str, BaseException] | None = None
        self._suspect_leases: set[str] = set()  # leases of items handed back by a crash: one at a time
        self._redact = PathRedactor(settings.data_dir)

    # -- public -------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; in-flight items get ``shutdown_grace_seconds`` to finish. Thread-safe."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stopping = True
            return
        loop.call_soon_threadsafe(self._begin_stop)

    def _begin_stop(self) -> None:
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._wake is not None:
            self._wake.set()

    @property
    def in_flight(self) -> int:
        return sum(self._outstanding.values())

    async def run(self) -> WorkerStats:
        """Process items until :meth:`request_stop`. If one of the worker's own tasks fails unexpectedly, the
        failure is logged with its traceback at once, the worker stops, hands its items back as suspects (see
        :meth:`ClaimStore.rescue_expired_leases`) and raises :class:`WorkerCrashed`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._maintain_now = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        loop = self._loop
        def wake_from_any_thread() -> None:
            loop.call_soon_threadsafe(self._wake_up)

        self._remove_wake = self.store.on_wake(wake_from_any_thread)
        await asyncio.to_thread(self.store.register_worker, self.id, socket.gethostname(), os.getpid(),
                                list(self.handlers), self.concurrency)
        log.info("worker %s started: handlers %s", self.id, ", ".join(self.handlers))
        lanes = self._start_lanes()
        side = [
            self._supervised(self._flush_loop(), "flusher"),
            self._supervised(self._heartbeat_loop(), "heartbeat"),
            self._supervised(self._control_loop(), "control"),
            self._supervised(self._watchdog_loop(), "watchdog"),
        ]
        if self.run_maintenance:
            side.append(self._supervised(self._maintenance_loop(), "maintenance"))
        if self.store.db.is_postgres:
            side.append(self._supervised(self._listen_loop(), "listener"))
        fetch = self._supervised(self._fetch_loop(), "fetch")
        try:
            with contextlib.suppress(Exception):  # a failure of the fetch loop is recorded by _task_ended
                await fetch
            if self._crash is None:
                await self._drain(lanes)
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await asyncio.shield(self._final_flush())
            if self._remove_wake is not None:
                self._remove_wake()
            await asyncio.shield(self._record_end())
        if self._crash is not None:
            what, exc = self._crash
            raise WorkerCrashed(f"worker {self.id} stopped: its {what} task failed: {type(exc).__name__}: "
                                f"{storable(str(exc))}") from exc
        return self.stats

    def _supervised(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A task of the worker's own: if it ends with an error, the worker stops (loudly, at once)."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._crashed(task.get_name(), exc)
        elif not self._stopping and task.get_name() != "fetch" and not task.get_name().startswith("lane-"):
            self._crashed(task.get_name(), RuntimeError("the task ended on its own"))

    def _crashed(self, what: str, exc: BaseException) -> None:
        """Called on the event loop when one of the worker's own tasks or threads failed."""
        if self._crash is not None:
            log.error("worker %s: %s also failed", self.id, what, exc_info=exc)
            return
        self._crash = (what, exc)
        log.error("worker %s: %s failed unexpectedly; stopping the worker (its items return to the queue)",
                  self.id, what, exc_info=exc)
        self._begin_stop()

    async def _record_end(self) -> None:
        """Mark this worker stopped (or crashed, handing its leases over at once: their items are suspects)."""
        try:
            if self._crash is not None:
                await asyncio.to_thread(self.store.expire_leases_of, self.id)
            await asyncio.to_thread(self.store.set_worker_status, self.id,
                                    "crashed" if self._crash is not None else "stopped")
        except StoreUnavailable as exc:
            log.warning("worker %s: could not record its stop: %s", self.id, exc.message)
        log.info("worker %s %s: %d claimed, %d finished", self.id,
                 "crashed" if self._crash is not None else "stopped", self.stats.claimed, self.stats.accepted)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- fetching -----------------------------------------------------------------------------------------

    def _capacity(self) -> dict[str, int]:
        chunk = self.settings.claim_chunk
        return {name: min(chunk, 2 * self._lanes[name] - self._outstanding[name]) for name in self.handlers}

    async def _fetch_loop(self) -> None:
        assert self._wake is not None
        poll = self.settings.poll_interval_ms / 1000.0
        while not self._stopping:
            capacity = self._capacity()
            if all(free <= 0 for free in capacity.values()):
                await self._sleep_until_wake(poll / 5)
                continue
            try:
                batch = await asyncio.to_thread(self.store.claim_items, self.id, capacity,
                                                self.settings.lease_seconds, suspects=not self._suspect_leases,
                                                max_rescues=self.settings.max_rescues)
            except StoreUnavailable as exc:
                self._store_trouble("claim", exc)
                await self._sleep_until_wake(STORE_RETRY_SECONDS)
                continue
            if batch is None:
                await self._sleep_until_wake(poll)
                continue
            if batch.items:
                self._dispatch(batch)
            else:  # e.g. only suspects are due and this worker already runs its one group of them
                await self._sleep_until_wake(poll / 5)

    async def _sleep_until_wake(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _dispatch(self, batch: ClaimBatch) -> None:
        job = batch.job
        spec = self.handlers[job.handler]
        control = self._controls.get(job.id)
        if control is None:
            control = self._controls[job.id] = JobControl(job.id)
        n = len(batch.items)
        self._control_items[job.id] += n
        self._outstanding[job.handler] += n
        self._in_flight_total += n
        self._lease_left[batch.lease_token] = n
        self._lease_handler[batch.lease_token] = job.handler
        if batch.suspect:
            self._suspect_leases.add(batch.lease_token)
        self.stats.claimed += n
        timeout = job.timeout_seconds or spec.timeout_seconds
        for item in batch.items:
            work = WorkItem(job, item, batch.lease_token, spec, control, self.storage, timeout)
            if spec.is_async:
                self._async_work[job.handler].append(work)
            else:
                self._sync_queues[job.handler].put(work)
        if spec.is_async:
            self._async_ready[job.handler].set()

    # -- running --------------------------------------------------------------------------------------------

    def _start_lanes(self) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        for name, spec in self.handlers.items():
            lanes = self._lanes[name]
            if spec.is_async:
                self._async_work[name] = collections.deque()
                self._async_ready[name] = asyncio.Event()
                tasks += [self._supervised(self._async_lane(name, i), f"lane-{name}-{i}") for i in range(lanes)]
            else:
                self._sync_queues[name] = queue.SimpleQueue()
                for i in range(lanes):
                    thread = threading.Thread(target=self._sync_lane_supervised, args=(name,),
                                              name=f"batchyard-{name}-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        return tasks

    def _begin(self, work: WorkItem) -> bool:
        """Start an item's clock, or report it skipped (job paused or cancelled, worker draining).

        After a crash nothing starts and nothing is reported: the item's lease is handed over as a suspect."""
        if self._crash is not None:
            return False
        control = work._control
        if control.cancelled or control.paused or self._draining:
            self._emit(work, skip_reason(job_cancelled=control.cancelled, job_paused=control.paused,
                                         draining=self._draining))
            return False
        work._started = time.monotonic()
        if work._deadline is not None:
            work._deadline += work._started
        return True

    async def _async_lane(self, name: str, index: int) -> None:
        pending = self._async_work[name]
        ready = self._async_ready[name]
        task = asyncio.current_task()
        assert task is not None
        slot = (name, index)
        while True:
            if not pending:
                ready.clear()
                await ready.wait()
                continue
            work = pending.popleft()
            if work is None:
                return
            if not self._begin(work):
                continue
            self._running_async[slot] = (work, task)
            try:
                value = await work._spec.function(json.loads(work._payload), work)
            except asyncio.CancelledError:
                if work._interrupt is None:
                    raise
                task.uncancel()
                self._emit_interrupted(work)
            except Exception as exc:  # a handler's failure is the item's, never the worker's
                self._emit_failure(work, exc)
            else:
                self._emit_success(work, value)
            finally:
                self._running_async.pop(slot, None)
                if work._interrupt is not None and task.cancelling():
                    task.uncancel()

    def _sync_lane_supervised(self, name: str) -> None:
        try:
            self._sync_lane(name)
        except BaseException as exc:  # a bug in the lane itself, not a handler's failure: stop the worker
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._crashed, threading.current_thread().name, exc)

    def _sync_lane(self, name: str) -> None:
        q = self._sync_queues[name]
        ident = threading.get_ident()
        while True:
            work = q.get()
            if work is None:
                return
            if not self._begin(work):
                continue
            self._running_sync[ident] = work
            try:
                value = work._spec.function(json.loads(work._payload), work)
            except Exception as exc:
                self._emit_failure(work, exc)
            else:
                self._emit_success(work, value)
            finally:
                self._running_sync.pop(ident, None)

    # -- outcomes -----------------------------------------------------------------------------------------

    def _emit_success(self, work: WorkItem, value: Any) -> None:
        try:
            result = json_text(value)
        except (TypeError, ValueError) as exc:
            self._emit(work, "failed", error=self._error_json(
                work, "ResultNotSerializable", f"the handler's result is not JSON-serializable: {exc}",
                "result_not_serializable"))
            return
        self._emit(work, "succeeded", result=result)

    def _emit_failure(self, work: WorkItem, exc: BaseException) -> None:
        if isinstance(exc, ItemCancelled) and work.cancelled:
            self._emit(work, "cancelled", error=self._error_json(work, "Cancelled", str(exc), "cancelled"))
            return
        retryable = exc.retryable if isinstance(exc, ItemError) else True
        retry_after = exc.retry_after if isinstance(exc, ItemError) else None
        code = exc.code if isinstance(exc, ItemError) else None
        tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
        error = self._error_json(work, type(exc).__name__, str(exc) or type(exc).__name__, code, tb, retryable)
        self._emit_error(work, error, retryable, retry_after)

    def _emit_error(self, work: WorkItem, error: str, retryable: bool, retry_after: float | None) -> None:
        job = work._job
        if after_failure(retryable=retryable, attempt=work.attempt, max_attempts=job.max_attempts,
                         job_stopping=work._control.cancelled) == "retry":
            delay = backoff_delay(work.attempt, base_seconds=job.backoff_base_seconds,
                                  max_seconds=job.backoff_max_seconds, retry_after=retry_after)
            self._emit(work, "retry", error=error, retry_delay=delay)
        else:
            self._emit(work, "failed", error=error)

    def _error_json(self, work: WorkItem, type_: str, message: str, code: str | None, tb: str | None = None,
                    retryable: bool | None = None) -> str:
        """An item's error as stored: storable text, without the server's own paths (data dir, venv, home)."""
        error: dict[str, Any] = {"type": type_, "message": self._redact(storable(message))[:4000],
                                 "attempt": work.attempt}
        if code:
            error["code"] = code
        if retryable is not None:
            error["retryable"] = retryable
        if tb:
            error["traceback"] = self._redact(storable(tb))
        return json_text(error)

    def _emit_interrupted(self, work: WorkItem) -> None:
        if work._interrupt == "timeout":
            self._emit_timeout(work)
        elif work._interrupt == "shutdown":
            self._emit(work, "release")
        else:
            self._emit(work, "cancelled", error=self._error_json(work, "Cancelled", "job cancelled", "cancelled"))

    def _emit_timeout(self, work: WorkItem) -> None:
        limit = work._job.timeout_seconds or work._spec.timeout_seconds
        error = self._error_json(work, "Timeout", f"item took longer than its {limit:g}s timeout", "timeout")
        self._emit_error(work, error, True, None)

    def _emit(self, work: WorkItem, kind: Any, *, result: str | None = None, error: str | None = None,
              retry_delay: float = 0.0) -> None:
        with self._outcome_lock:  # a sync item can be finished by its thread or by the watchdog: once only
            if work._done:
                return
            work._done = True
        released = kind == "release"
        duration = time.monotonic() - work._started if work._started else 0.0
        self._outcomes.append(Outcome(
            work.job_id, work.seq, work._token, kind, result, error, time.time(), retry_delay,
            0.0 if released else work.cost, None if released else work.usage, duration))
        # Flush early once half of what is in flight has finished, so claims never wait on the timer.
        pending = len(self._outcomes)
        if self._flush_now is not None and threading.get_ident() == self._loop_thread and (
                pending >= self.settings.flush_max_items or 2 * pending >= self._in_flight_total):
            self._flush_now.set()

    # -- side tasks -----------------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        assert self._flush_now is not None
        interval = self.settings.flush_interval_ms / 1000.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), interval)
            self._flush_now.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Record finished outcomes in one transaction. If the database is unavailable they stay queued here
        and the next flush tries again: nothing is lost, and leases keep the items from running twice meanwhile."""
        async with self._flush_lock:
            if not self._outcomes:
                return
            take = min(len(self._outcomes), self.settings.flush_max_items * 2)
            popleft = self._outcomes.popleft
            batch = [popleft() for _ in range(take)]
            per_token = collections.Counter(o.lease_token for o in batch)
            finished = [token for token, n in per_token.items() if self._lease_left[token] == n]
            # Free the capacity now, so the next claim overlaps this write instead of waiting for it.
            self._free_capacity(per_token, -1)
            try:
                try:
                    report = await asyncio.to_thread(self.store.complete_items, batch, finished)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    log.error("worker %s: recording %d outcomes failed; recording them one at a time", self.id,
                              len(batch), exc_info=exc)
                    report = await asyncio.to_thread(self._complete_one_at_a_time, batch, finished)
            except StoreUnavailable as exc:
                self._free_capacity(per_token, +1)
                self._outcomes.extendleft(reversed(batch))
                self._store_trouble("flush", exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                return
            self._forget(batch, per_token)
        self.stats.flushed += len(batch)
        self.stats.accepted += report.accepted
        if report.settled and self._maintain_now is not None:
            self._maintain_now.set()
        if self._wake is not None:
            self._wake.set()  # capacity freed: claim more

    def _complete_one_at_a_time(self, batch: list[Outcome], finished: list[str]) -> CompletionReport:
        """After a flush failed for a reason other than the database being away: find the outcomes that cannot
        be stored and fail their items (``unrecordable``) instead, so one item cannot stop the worker."""
        report = CompletionReport()
        for outcome in batch:
            try:
                single = self.store.complete_items([outcome])
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.error("worker %s: the outcome of item %s of %s cannot be stored; failing the item",
                          self.id, outcome.seq, outcome.job_id, exc_info=exc)
                error = json_text({"type": "UnrecordableOutcome", "code": "unrecordable", "retryable": False,
                                   "message": "the item's outcome could not be stored: "
                                              f"{type(exc).__name__}: {storable(str(exc))[:500]}"})
                substitute = Outcome(outcome.job_id, outcome.seq, outcome.lease_token, "failed", error=error,
                                     finished_at=outcome.finished_at, duration=outcome.duration)
                try:
                    single = self.store.complete_items([substitute])
                except StoreUnavailable:
                    raise
                except Exception:  # its lease expires and it comes back as a suspect
                    log.exception("worker %s: could not fail item %s of %s either", self.id, outcome.seq,
                                  outcome.job_id)
                    continue
            report.accepted += single.accepted
            report.settled += single.settled
        if finished:
            self.store.complete_items([], finished)
        return report

    def _free_capacity(self, per_token: collections.Counter[str], sign: int) -> None:
        for token, n in per_token.items():
            self._outstanding[self._lease_handler[token]] += sign * n
            self._in_flight_total += sign * n

    def _forget(self, batch: list[Outcome], per_token: collections.Counter[str]) -> None:
        """Drop the bookkeeping of outcomes now recorded: leases and job controls."""
        for token, n in per_token.items():
            left = self._lease_left[token] - n
            if left:
                self._lease_left[token] = left
            else:
                del self._lease_left[token]
                del self._lease_handler[token]
                self._suspect_leases.discard(token)
        for job_id, n in collections.Counter(o.job_id for o in batch).items():
            left = self._control_items[job_id] - n
            if left > 0:
                self._control_items[job_id] = left
            else:
                self._controls.pop(job_id, None)
                self._control_items.pop(job_id, None)

    def _store_trouble(self, what: str, exc: StoreUnavailable) -> None:
        now = time.monotonic()
        if now - self._last_store_warning > STORE_WARNING_INTERVAL:
            self._last_store_warning = now
            log.warning("worker %s: %s failed, retrying: %s", self.id, what, exc.message)

    async def _final_flush(self) -> None:
        for _ in range(FINAL_FLUSH_TRIES):
            if not self._outcomes:
                return
            try:
                await self._flush()
            except Exception:  # the crash being handled may be the flusher's own
                log.exception("worker %s: final flush failed", self.id)
                break
        if self._outcomes:  # the database stayed away: these items come back when their leases expire
            log.error("worker %s: could not record %d outcomes; their items will run again", self.id,
                      len(self._outcomes))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await asyncio.to_thread(self.store.heartbeat, self.id, self.in_flight, self.settings.lease_seconds)
            except StoreUnavailable as exc:
                self._store_trouble("heartbeat", exc)

    async def _control_loop(self) -> None:
        """Tell in-flight items about their job's status: cancelled jobs stop, paused jobs start nothing new."""
        while True:
            await asyncio.sleep(CONTROL_POLL_INTERVAL)
            if not self._controls:
                continue
            asked = list(self._controls)
            try:
                statuses = await asyncio.to_thread(self.store.job_statuses, asked)
            except StoreUnavailable as exc:
                self._store_trouble("status check", exc)
                continue
            self._apply_statuses(asked, statuses)

    def _apply_statuses(self, asked: list[str], statuses: dict[str, str]) -> None:
        """Apply the answer about exactly the jobs that were asked about: a job dispatched while the question
        was out is left alone until the next poll. A job that was asked about and is missing was deleted."""
        for job_id in asked:
            control = self._controls.get(job_id)
            if control is None:
                continue
            status = statuses.get(job_id)
            control.paused = status == JobStatus.PAUSED
            stop = status is None or status in STOPPING_JOB_STATUSES
            if stop and not control.cancelled:
                control.cancelled = True
                self._interrupt_async(job_id, "cancel")
            elif not stop:
                control.cancelled = False  # retried after failing: its new items run

    def _interrupt_async(self, job_id: str | None, reason: str, *, deadline_before: float | None = None) -> None:
        """Cancel running async items: of one job (or all), or only those past their deadline."""
        for work, task in list(self._running_async.values()):
            if work._interrupt is not None or (job_id is not None and work._job.id != job_id):
                continue
            if deadline_before is not None and (work._deadline is None or work._deadline >= deadline_before):
                continue
            work._interrupt = reason
            task.cancel()

    async def _watchdog_loop(self) -> None:
        """Enforce per-item timeouts: cancel async items; fail sync ones (their thread is abandoned)."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            now = time.monotonic()
            self._interrupt_async(None, "timeout", deadline_before=now)
            for work in list(self._running_sync.values()):
                if work._deadline is not None and work._deadline < now and work._interrupt is None:
                    work._interrupt = "timeout"
                    work.timed_out = True
                    self._emit_timeout(work)

    async def _maintenance_loop(self) -> None:
        assert self._maintain_now is not None
        maintenance = Maintenance(self.store, self.storage, self.settings)
        interval = self.settings.maintenance_interval_ms / 1000.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._maintain_now.wait(), interval)
            self._maintain_now.clear()
            try:
                await asyncio.to_thread(maintenance.run_once)
            except Exception:  # maintenance retries next round; a failure must not stop the worker
                log.exception("maintenance round failed")

    async def _listen_loop(self) -> None:
        """PostgreSQL: wake on NOTIFY from any process that creates or requeues work."""
        from batchyard.store.notify import listen

        async for _ in listen(self.store.url):
            self._wake_up()

    # -- stopping -------------------------------------------------------------------------------------------

    def _release_leftovers(self) -> None:
        """After the grace period: give back whatever is still running (sync threads are abandoned) or queued."""
        for work in list(self._running_sync.values()):
            work._interrupt = "shutdown"
            work.timed_out = True
            self._emit(work, "release")
        leftovers = [work for pending in self._async_work.values() for work in pending if work is not None]
        for pending in self._async_work.values():
            pending.clear()
        leftovers += [work for sq in self._sync_queues.values() for work in _drain_queue(sq)]
        for work in leftovers:
            self._emit(work, "release")

    async def _drain(self, lanes: list[asyncio.Task[None]]) -> None:
        """Graceful stop: release items not yet started; give running ones the grace period, then interrupt."""
        self._draining = True
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        for name, pending in self._async_work.items():
            pending.extend([None] * self._lanes[name])
            self._async_ready[name].set()
        for name, sq in self._sync_queues.items():
            for _ in range(self._lanes[name]):
                sq.put(None)
        while self.in_flight - len(self._outcomes) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await self._flush()
        self._interrupt_async(None, "shutdown")
        await asyncio.sleep(0)
        self._release_leftovers()
        await asyncio.gather(*lanes, return_exceptions=True)


def _drain_queue(q: queue.SimpleQueue[WorkItem | None]) -> list[WorkItem]:
    items: list[WorkItem] = []
    with contextlib.suppress(queue.Empty):
        while True:
            work = q.get_nowait()
            if work is not None:
                items.append(work)
    return items


class PathRedactor:
    """Replaces this server's own paths in texts shown to API users: the data dir, the Python installation
    (site-packages, the standard library), the working directory and the home directory."""

    def __init__(self, data_dir: Path) -> None:
        places: dict[str, str] = {}
        for path in sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}):
            places[path] = "<site-packages>"
        for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
            places.setdefault(prefix, "<python>")
        places[str(Path(data_dir).resolve())] = "<data-dir>"
        places[str(data_dir)] = "<data-dir>"
        with contextlib.suppress(OSError):
            places.setdefault(os.getcwd(), ".")
        home = os.path.expanduser("~")
        if home not in ("/", "~"):
            places.setdefault(home, "~")
        ordered = sorted((p for p in places if len(p) > 1), key=len, reverse=True)
        self._places = places
        self._pattern = re.compile("|".join(re.escape(p) for p in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._places[m.group(0)], text)
