"""The executor: runs claimed items through their handlers and turns every attempt into exactly one outcome.

Async handlers run in long-lived lanes (no task per item), sync handlers in threads; ``concurrency`` of each
handler is its number of lanes. Outcomes go to the :class:`~batchyard.worker.completer.Completer`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from batchyard import logs
from batchyard.context import ItemContext, JobControl
from batchyard.core.backoff import backoff_delay
from batchyard.core.lifecycle import OutcomeKind, after_failure, skip_reason
from batchyard.core.records import ClaimBatch, ClaimedItem, ClaimedJob, Outcome
from batchyard.core.storable import json_text, storable
from batchyard.data.blobs import LocalStorage
from batchyard.errors import ItemCancelled, ItemError, PauseJob, SkipItem
from batchyard.registry import HandlerFunction, HandlerSpec
from batchyard.worker.completer import Completer
from batchyard.worker.failures import FailureLog
from batchyard.worker.redact import PathRedactor
from batchyard.worker.resources import ResourceNeeded, WorkerResources

MAX_TRACEBACK_CHARS = 8000
MAX_RESOURCE_WAITS = 20  # an async handler started again after waiting for a resource, at most this often
MAX_APP_MESSAGE_CHARS = 2000  # PauseJob's and SkipItem's messages
_NO_ATTEMPT_SPENT = frozenset({"release", "pause"})

_init_context = ItemContext.__init__


class WorkItem(ItemContext):
    """One claimed item on its way through a handler. It is also the handler's ``ctx`` (one object per item);
    the attributes added here are the worker's side of it, not part of the handler's API."""

    __slots__ = ("control", "deadline", "done", "interrupt", "job", "lease_token", "payload", "spec", "started")

    def __init__(
        self,
        job: ClaimedJob,
        item: ClaimedItem,
        lease_token: str,
        spec: HandlerSpec,
        control: JobControl,
        storage: LocalStorage,
        timeout: float | None,
        resources: WorkerResources,
    ) -> None:
        _init_context(
            self, job.id, item.key, item.seq, item.attempt, job.max_attempts, job.params, control, storage, resources
        )
        self.job = job
        self.payload = item.payload
        self.lease_token = lease_token
        self.spec = spec
        self.control = control
        self.started = 0.0
        self.deadline = timeout  # seconds until started, then an absolute monotonic time
        self.interrupt: str | None = None  # "cancel" | "timeout" | "shutdown"
        self.done = False


Supervise = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class Executor:
    """Lanes per handler, the items running in them, and the outcomes of their handlers."""

    def __init__(
        self,
        handlers: dict[str, HandlerSpec],
        lanes: dict[str, int],
        storage: LocalStorage,
        completer: Completer,
        redact: PathRedactor,
        failures: FailureLog | None = None,
        resources: WorkerResources | None = None,
    ) -> None:
        self.handlers = handlers
        self.resources = resources if resources is not None else WorkerResources({})
        self.failures = failures  # None: failed items are not logged
        self.lanes = lanes
        self.storage = storage
        self._add_outcome = completer.add
        self._redact = redact
        self.draining = False  # a graceful stop: nothing new starts, it goes back to the queue
        self.halted = False  # the worker crashed: nothing starts and nothing is reported
        self._outcome_lock = threading.Lock()
        self._running_async: dict[tuple[str, int], tuple[WorkItem, asyncio.Task[Any]]] = {}
        self._running_sync: dict[int, WorkItem] = {}
        # Async lanes take work from a deque and sleep on an event when it is empty: cheaper per item than
        # asyncio.Queue, which matters at tens of thousands of items per second.
        self._async_work: dict[str, collections.deque[WorkItem | None]] = {}
        self._async_ready: dict[str, asyncio.Event] = {}
        self._sync_queues: dict[str, queue.SimpleQueue[WorkItem | None]] = {}
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_thread_crash: Callable[[str, BaseException], None] | None = None
        self._calls: dict[str, HandlerFunction] = {}  # per handler: the function its lanes call
        self._completer = completer

    # -- lanes ----------------------------------------------------------------------------------------------

    def start(
        self, supervise: Supervise, on_thread_crash: Callable[[str, BaseException], None]
    ) -> list[asyncio.Task[None]]:
        """Start every lane: async ones as tasks (``supervise`` makes them), sync ones as threads whose own
        failure is reported to ``on_thread_crash`` on the event loop. Returns the async lanes' tasks."""
        self._loop = asyncio.get_running_loop()
        self._on_thread_crash = on_thread_crash
        tasks: list[asyncio.Task[None]] = []
        for name, spec in self.handlers.items():
            self._calls[name] = with_admit(spec, self._loop)
            lanes = self.lanes[name]
            if spec.is_async:
                self._async_work[name] = collections.deque()
                self._async_ready[name] = asyncio.Event()
                tasks += [supervise(self._async_lane(name, i), f"lane-{name}-{i}") for i in range(lanes)]
            else:
                self._sync_queues[name] = queue.SimpleQueue()
                for i in range(lanes):
                    thread = threading.Thread(
                        target=self._sync_lane_supervised, args=(name,), name=f"batchyard-{name}-{i}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        return tasks

    def dispatch(self, batch: ClaimBatch, control: JobControl) -> None:
        """Queue a claimed batch's items in their handler's lanes."""
        job = batch.job
        spec = self.handlers[job.handler]
        timeout = job.timeout_seconds or spec.timeout_seconds
        storage = self.storage
        token = batch.lease_token
        resources = self.resources
        if spec.is_async:
            self._async_work[job.handler].extend(
                WorkItem(job, item, token, spec, control, storage, timeout, resources) for item in batch.items
            )
            self._async_ready[job.handler].set()
        else:
            put = self._sync_queues[job.handler].put
            for item in batch.items:
                put(WorkItem(job, item, token, spec, control, storage, timeout, resources))

    def begin(self, work: WorkItem) -> bool:
        """Start an item's clock, or report it skipped (job paused or cancelled, worker draining).

        After a crash nothing starts and nothing is reported: the item's lease is handed over as a suspect."""
        if self.halted:
            return False
        control = work.control
        skip = (
            skip_reason(job_cancelled=control.cancelled, job_paused=control.paused, draining=self.draining)
            if control.cancelled or control.paused or self.draining
            else None
        )  # no call on the hot path
        if skip is not None:
            self._emit(work, skip)
            return False
        work.started = time.monotonic()
        if work.deadline is not None:
            work.deadline += work.started
        return True

    async def _async_lane(self, name: str, index: int) -> None:
        pending = self._async_work[name]
        ready = self._async_ready[name]
        task = asyncio.current_task()
        assert task is not None
        slot = (name, index)
        call = self._calls[name]
        while True:
            if not pending:
                ready.clear()
                await ready.wait()
                continue
            work = pending.popleft()
            if work is None:
                return
            if not self.begin(work):
                continue
            self._running_async[slot] = (work, task)
            marked = logs.running_item(work)  # a handler's own log lines carry its job and item
            try:
                try:
                    if work.spec.resources and not self.resources.ready(work.spec.resources):
                        await self._acquire_declared(work)
                    value = await call(json.loads(work.payload), work)
                except ResourceNeeded as need:
                    value = await self._run_again_when_up(work, need)
            except asyncio.CancelledError:
                if work.interrupt is None:
                    raise
                task.uncancel()
                self._emit_interrupted(work)
            except Exception as exc:  # a handler's failure is the item's, never the worker's
                self._emit_failure(work, exc)
            else:
                self._emit_success(work, value)
            finally:
                logs.done_item(marked)
                self._running_async.pop(slot, None)
                if work.interrupt is not None and task.cancelling():
                    task.uncancel()

    def _sync_lane_supervised(self, name: str) -> None:
        try:
            self._sync_lane(name)
        except BaseException as exc:  # a bug in the lane itself, not a handler's failure: stop the worker
            loop = self._loop
            if loop is not None and not loop.is_closed() and self._on_thread_crash is not None:
                loop.call_soon_threadsafe(self._on_thread_crash, threading.current_thread().name, exc)

    def _sync_lane(self, name: str) -> None:
        q = self._sync_queues[name]
        ident = threading.get_ident()
        call = self._calls[name]
        while True:
            work = q.get()
            if work is None:
                return
            if not self.begin(work):
                continue
            self._running_sync[ident] = work
            marked = logs.running_item(work)
            try:
                if work.spec.resources and not self.resources.ready(work.spec.resources):
                    timeout = _stop_clock(work)
                    for resource in work.spec.resources:
                        self.resources[resource]  # waits for its start on the event loop
                    _restart_clock(work, timeout)
                value = call(json.loads(work.payload), work)
            except Exception as exc:
                self._emit_failure(work, exc)
            else:
                self._emit_success(work, value)
            finally:
                logs.done_item(marked)
                self._running_sync.pop(ident, None)

    # -- resources ------------------------------------------------------------------------------------------

    async def _acquire_declared(self, work: WorkItem) -> None:
        """The resources a handler declared, started if need be before it runs (their start is not its time)."""
        timeout = _stop_clock(work)
        for name in work.spec.resources:
            await self.resources.acquire(name)
        _restart_clock(work, timeout)

    async def _run_again_when_up(self, work: WorkItem, need: ResourceNeeded) -> Any:
        """An async handler read a resource that was not up: wait for it, then run the handler again from the
        start (see :mod:`batchyard.worker.resources`)."""
        for _ in range(MAX_RESOURCE_WAITS):
            timeout = _stop_clock(work)
            await self.resources.acquire(need.name)
            _restart_clock(work, timeout)
            try:
                return await self._calls[work.job.handler](json.loads(work.payload), work)
            except ResourceNeeded as again:
                need = again
        raise RuntimeError(f"resource {need.name!r} went away {MAX_RESOURCE_WAITS} times while the item waited")

    # -- interrupting and stopping --------------------------------------------------------------------------

    def running_sync_items(self) -> list[WorkItem]:
        return list(self._running_sync.values())

    def interrupt_async(self, job_id: str | None, reason: str, *, deadline_before: float | None = None) -> None:
        """Cancel running async items: of one job (or all), or only those past their deadline."""
        for work, task in list(self._running_async.values()):
            if work.interrupt is not None or (job_id is not None and work.job.id != job_id):
                continue
            if deadline_before is not None and (work.deadline is None or work.deadline >= deadline_before):
                continue
            work.interrupt = reason
            task.cancel()

    def time_out(self, work: WorkItem) -> None:
        """A sync item past its deadline: report it timed out now (its thread is abandoned)."""
        work.interrupt = "timeout"
        work.timed_out = True
        self._emit_timeout(work)

    def stop_lanes(self) -> None:
        """Graceful stop: every lane ends once the items queued before this are done (or released)."""
        self.draining = True
        for name, pending in self._async_work.items():
            pending.extend([None] * self.lanes[name])
            self._async_ready[name].set()
        for name, sq in self._sync_queues.items():
            for _ in range(self.lanes[name]):
                sq.put(None)

    def release_leftovers(self) -> None:
        """After the grace period: give back whatever is still running (sync threads are abandoned) or queued."""
        for work in list(self._running_sync.values()):
            work.interrupt = "shutdown"
            work.timed_out = True
            self._emit(work, "release")
        leftovers = [work for pending in self._async_work.values() for work in pending if work is not None]
        for name, pending in self._async_work.items():
            pending.clear()
            pending.extend([None] * self.lanes[name])  # the stop sentinels went with the clear: lanes need them
            self._async_ready[name].set()
        for name, sq in self._sync_queues.items():
            leftovers += _drain_queue(sq)
            # The drain took the lanes' stop sentinels too: a lane thread that had not reached its own yet would
            # wait on the queue for ever (one leaked thread per lane at every stop). Each gets one again.
            for _ in range(self.lanes[name]):
                sq.put(None)
        for work in leftovers:
            self._emit(work, "release")

    # -- outcomes -------------------------------------------------------------------------------------------

    def _emit_success(self, work: WorkItem, value: Any) -> None:
        try:
            result = json_text(value)
        except (TypeError, ValueError) as exc:
            self._emit(
                work,
                "failed",
                error=self._error_json(
                    work,
                    "ResultNotSerializable",
                    f"the handler's result is not JSON-serializable: {exc}",
                    "result_not_serializable",
                ),
            )
            return
        self._emit(work, "succeeded", result=result)

    def _emit_failure(self, work: WorkItem, exc: BaseException) -> None:
        if isinstance(exc, PauseJob | SkipItem):
            self._emit_app_decision(work, exc)
            return
        if isinstance(exc, ItemCancelled) and work.cancelled:
            self._emit(work, "cancelled", error=self._error_json(work, "Cancelled", str(exc), "cancelled"))
            return
        retryable = exc.retryable if isinstance(exc, ItemError) else True
        retry_after = exc.retry_after if isinstance(exc, ItemError) else None
        code = exc.code if isinstance(exc, ItemError) else None
        detail = exc.detail if isinstance(exc, ItemError) else None
        tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
        error = self._error_json(
            work, type(exc).__name__, str(exc) or type(exc).__name__, code, tb, retryable, detail=detail
        )
        self._emit_error(work, error, retryable, retry_after)

    def _emit_error(self, work: WorkItem, error: str, retryable: bool, retry_after: float | None) -> None:
        job = work.job
        if (
            after_failure(
                retryable=retryable,
                attempt=work.attempt,
                max_attempts=job.max_attempts,
                job_stopping=work.control.cancelled,
            )
            == "retry"
        ):
            delay = backoff_delay(
                work.attempt,
                base_seconds=job.backoff_base_seconds,
                max_seconds=job.backoff_max_seconds,
                retry_after=retry_after,
            )
            self._emit(work, "retry", error=error, retry_delay=delay)
        else:
            self._emit(work, "failed", error=error)

    def _error_json(
        self,
        work: WorkItem,
        type_: str,
        message: str,
        code: str | None,
        tb: str | None = None,
        retryable: bool | None = None,
        *,
        detail: dict[str, Any] | None = None,
    ) -> str:
        """An item's error as stored: storable text, without the server's own paths (data dir, venv, home).
        ``detail`` (an :class:`ItemError`'s) is kept as given, or as its ``repr`` when JSON cannot hold it."""
        error: dict[str, Any] = {
            "type": type_,
            "message": self._redact(storable(message))[:4000],
            "attempt": work.attempt,
        }
        if code:
            error["code"] = code
        if retryable is not None:
            error["retryable"] = retryable
        if tb:
            error["traceback"] = self._redact(storable(tb))
        if detail is not None:
            try:
                json_text(detail)
            except (TypeError, ValueError) as exc:
                detail = {"unserializable": storable(repr(detail))[:4000], "reason": str(exc)}
            error["detail"] = detail
        return json_text(error)

    def _emit_app_decision(self, work: WorkItem, exc: PauseJob | SkipItem) -> None:
        """The app's own rules, from its handler or admit hook: skip this item, or pause its job. A pause holds
        the job's other items in this worker at once (they go back to the queue untouched) and is written with
        the next flush, asked for now, which pauses the job (``paused_by_handler``) with the item's release."""
        message = storable(str(exc.message))[:MAX_APP_MESSAGE_CHARS]
        if isinstance(exc, SkipItem):
            error = json_text({"type": "SkipItem", "code": "skipped", "message": message, "attempt": work.attempt})
            self._emit(work, "skipped", error=error)
            return
        control = work.control
        control.paused = control.pausing = True
        completer = self._completer
        completer.pause_coming()
        error = json_text({"type": "PauseJob", "code": "paused_by_handler", "message": message})
        if self._emit(work, "pause", error=error):
            completer.flush_soon()
        else:
            completer.pause_dropped()

    def _emit_interrupted(self, work: WorkItem) -> None:
        if work.interrupt == "timeout":
            self._emit_timeout(work)
        elif work.interrupt == "shutdown":
            self._emit(work, "release")
        else:
            self._emit(work, "cancelled", error=self._error_json(work, "Cancelled", "job cancelled", "cancelled"))

    def _emit_timeout(self, work: WorkItem) -> None:
        limit = work.job.timeout_seconds or work.spec.timeout_seconds
        error = self._error_json(work, "Timeout", f"item took longer than its {limit:g}s timeout", "timeout")
        self._emit_error(work, error, True, None)

    def _emit(
        self,
        work: WorkItem,
        kind: OutcomeKind,
        *,
        result: str | None = None,
        error: str | None = None,
        retry_delay: float = 0.0,
    ) -> bool:
        """Report the item's outcome, once: False if it was reported already."""
        with self._outcome_lock:  # a sync item can be finished by its thread or by the watchdog: once only
            if work.done:
                return False
            work.done = True
        if kind == "failed" and error is not None and self.failures is not None:
            self.failures.failed_item(work.job_id, work.key, error, work.attempt)
        released = kind in _NO_ATTEMPT_SPENT  # no usage either
        duration = time.monotonic() - work.started if work.started else 0.0
        self._add_outcome(
            Outcome(
                work.job_id,
                work.seq,
                work.lease_token,
                kind,
                result,
                error,
                time.time(),
                retry_delay,
                0.0 if released else work.cost,
                None if released else work.usage,
                duration,
            )
        )
        return True


def with_admit(spec: HandlerSpec, loop: asyncio.AbstractEventLoop) -> HandlerFunction:
    """The function a handler's lanes call: the handler itself, or its ``admit`` hook and then the handler, in
    the handler's own flavour. An async hook of a sync handler runs on the worker's event loop (the lane's thread
    waits for it); a sync hook of an async handler runs on the loop directly. Without a hook nothing is added."""
    function, admit = spec.function, spec.admit
    if admit is None:
        return function
    if spec.is_async:
        if spec.admit_is_async:

            async def admit_then_run_async(item: Any, ctx: ItemContext) -> Any:
                await admit(item, ctx)
                return await function(item, ctx)

        else:

            async def admit_then_run_async(item: Any, ctx: ItemContext) -> Any:
                admit(item, ctx)
                return await function(item, ctx)

        return admit_then_run_async
    if spec.admit_is_async:

        def admit_then_run(item: Any, ctx: ItemContext) -> Any:
            asyncio.run_coroutine_threadsafe(admit(item, ctx), loop).result()
            return function(item, ctx)

    else:

        def admit_then_run(item: Any, ctx: ItemContext) -> Any:
            admit(item, ctx)
            return function(item, ctx)

    return admit_then_run


def _stop_clock(work: WorkItem) -> float | None:
    """While an item waits for a resource to start, its timeout does not run: returns the timeout to restart.
    The deadline becomes infinite, never None: the watchdog may be reading it from the event loop meanwhile."""
    if work.deadline is None:
        return None
    timeout = work.deadline - work.started
    work.deadline = math.inf
    return timeout


def _restart_clock(work: WorkItem, timeout: float | None) -> None:
    """Start an item's clock (and its timeout) again, after it waited for a resource to start."""
    work.started = time.monotonic()
    if timeout is not None:
        work.deadline = work.started + timeout


def _drain_queue(q: queue.SimpleQueue[WorkItem | None]) -> list[WorkItem]:
    items: list[WorkItem] = []
    with contextlib.suppress(queue.Empty):
        while True:
            work = q.get_nowait()
            if work is not None:
                items.append(work)
    return items
