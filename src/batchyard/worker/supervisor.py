"""The worker itself: claims work, starts its parts and supervises them.

A small async state machine. Side tasks (flusher, heartbeat, control poll, watchdog, maintenance, listener,
outbox) are supervised: if one crashes, the worker stops loudly. The fetch loop waits on whichever comes first: a
wake-up, the poll interval, or stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from batchyard import metrics
from batchyard.core.asyncwait import wait_event
from batchyard.core.records import ClaimBatch, CompletionReport
from batchyard.core.storable import storable
from batchyard.data.blobs import LocalStorage
from batchyard.errors import StoreUnavailable, WorkerCrashed
from batchyard.registry import HandlerRegistry
from batchyard.settings import Settings
from batchyard.worker.backend import MaintenanceRound, OutboxRound, WorkerBackend
from batchyard.worker.completer import Completer, WorkerStats
from batchyard.worker.control import Control, JobControls
from batchyard.worker.executor import Executor
from batchyard.worker.failures import FailureLog
from batchyard.worker.progress import ProgressBook
from batchyard.worker.redact import PathRedactor
from batchyard.worker.resources import WorkerResources
from batchyard.worker.trouble import STORE_RETRY_SECONDS, StoreTrouble

log = logging.getLogger("batchyard.worker")


class Worker:
    """Runs items of every job whose handler it knows (or only of ``job_ids``), until :meth:`request_stop`."""

    def __init__(
        self,
        store: WorkerBackend,
        storage: LocalStorage,
        registry: HandlerRegistry,
        settings: Settings,
        *,
        handlers: list[str] | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        maintenance: MaintenanceRound | None = None,
        outbox: OutboxRound | None = None,
        log_failures: bool = True,
        job_ids: list[str] | None = None,
    ) -> None:
        self.store = store
        # Limited to these jobs (``Job.wait``): registered as such, so it never counts as serving the handler.
        self.job_ids = None if job_ids is None else list(job_ids)
        self.storage = storage
        self.settings = settings
        self.registry = registry
        names = handlers or registry.names()
        self.handlers = {name: registry.get(name) for name in names}
        registry.check_resources(list(self.handlers))
        self.concurrency = concurrency or settings.worker_concurrency
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.maintenance = maintenance
        self.outbox = outbox
        self.stats = WorkerStats()
        lanes = {name: min(spec.concurrency, self.concurrency) for name, spec in self.handlers.items()}
        trouble = StoreTrouble(self.id)
        self._trouble = trouble
        self.progress = ProgressBook()
        self.controls = JobControls(self.progress)
        self.completer = Completer(
            store,
            settings,
            self.id,
            lanes,
            controls=self.controls,
            trouble=trouble,
            stats=self.stats,
            on_flushed=self._flushed,
            progress=self.progress,
        )
        self.failures = FailureLog() if log_failures else None
        self.resources = WorkerResources(
            registry.resources(),
            retry_base_seconds=settings.resource_retry_base_seconds,
            retry_max_seconds=settings.resource_retry_max_seconds,
            worker_id=self.id,
        )
        redact = PathRedactor(settings.data_dir)
        self.executor = Executor(self.handlers, lanes, storage, self.completer, redact, self.failures, self.resources)
        self.control = Control(store, self.controls, self.executor, trouble)
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._maintain_now: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._remove_wake: Callable[[], None] | None = None
        self._crash: tuple[str, BaseException] | None = None
        self.registered = threading.Event()  # set once its row is written: from then on it counts as live

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
        return self.completer.in_flight

    async def run(self) -> WorkerStats:
        """Process items until :meth:`request_stop`. If one of the worker's own tasks fails unexpectedly, the
        failure is logged with its traceback at once, the worker stops, hands its items back as suspects (see
        :meth:`ClaimStore.rescue_expired_leases`) and raises :class:`WorkerCrashed`."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._maintain_now = asyncio.Event()
        self.completer.start()
        self.resources.bind()
        if self._stopping:
            self._stop_event.set()
        loop = self._loop

        def wake_from_any_thread() -> None:
            loop.call_soon_threadsafe(self._wake_up)

        self._remove_wake = self.store.on_wake(wake_from_any_thread)
        await asyncio.to_thread(
            self.store.workers.register_worker,
            self.id,
            socket.gethostname(),
            os.getpid(),
            list(self.handlers),
            self.concurrency,
            self.job_ids,
        )
        self.registered.set()
        log.info("worker %s started: handlers %s", self.id, ", ".join(self.handlers), extra={"worker_id": self.id})
        lanes = self.executor.start(self._supervised, self._crashed)
        side = self._start_side_tasks()
        outbox = self._supervised(self._outbox_loop(), "outbox") if self.outbox is not None else None
        fetch = self._supervised(self._fetch_loop(), "fetch")
        try:
            with contextlib.suppress(Exception):  # a failure of the fetch loop is recorded by _task_ended
                await fetch
            if self._crash is None:
                await self._drain(lanes)
                if outbox is not None:
                    await self._end_outbox(outbox)
        finally:
            if outbox is not None:
                side.append(outbox)
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await asyncio.shield(self.completer.final_flush())
            if self.progress.has_work:  # delete the rows of items that reported progress and have ended
                await asyncio.shield(self.completer.write_progress())
            await asyncio.shield(self.resources.close())  # after the items that used them are done (or released)
            if self.failures is not None:
                self.failures.flush(due_only=False)
            if self._remove_wake is not None:
                self._remove_wake()
            await asyncio.shield(self._record_end())
        if self._crash is not None:
            what, exc = self._crash
            raise WorkerCrashed(
                f"worker {self.id} stopped: its {what} task failed: {type(exc).__name__}: {storable(str(exc))}"
            ) from exc
        return self.stats

    def _start_side_tasks(self) -> list[asyncio.Task[None]]:
        side = [
            self._supervised(self.completer.flush_loop(), "flusher"),
            self._supervised(self._heartbeat_loop(), "heartbeat"),
            self._supervised(self.control.poll_loop(), "control"),
            self._supervised(self.control.watchdog_loop(), "watchdog"),
        ]
        if self.maintenance is not None:
            side.append(self._supervised(self._maintenance_loop(), "maintenance"))
        if self.store.is_postgres:
            side.append(self._supervised(self._listen_loop(), "listener"))
        return side

    def _supervised(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task of the worker's own: if it ends with an error, the worker stops (loudly, at once)."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
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
        self.executor.halted = True  # nothing starts any more, nothing is reported: the items are suspects
        log.error(
            "worker %s: %s failed unexpectedly; stopping the worker (its items return to the queue)",
            self.id,
            what,
            exc_info=exc,
        )
        self._begin_stop()

    async def _record_end(self) -> None:
        """Mark this worker stopped (or crashed, handing its leases over at once: their items are suspects)."""
        try:
            if self._crash is not None:
                await asyncio.to_thread(self.store.claims.expire_leases_of, self.id)
            await asyncio.to_thread(
                self.store.workers.set_worker_status, self.id, "crashed" if self._crash is not None else "stopped"
            )
        except StoreUnavailable as exc:
            log.warning("worker %s: could not record its stop: %s", self.id, exc.message)
        log.info(
            "worker %s %s: %d claimed, %d finished",
            self.id,
            "crashed" if self._crash is not None else "stopped",
            self.stats.claimed,
            self.stats.accepted,
        )

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _flushed(self, report: CompletionReport) -> None:
        if report.settled and self._maintain_now is not None:
            self._maintain_now.set()
        if self._wake is not None:
            self._wake.set()  # capacity freed: claim more

    # -- fetching -----------------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        assert self._wake is not None
        poll = self.settings.poll_interval_ms / 1000.0
        completer = self.completer
        while not self._stopping:
            capacity = completer.capacity()
            if all(free <= 0 for free in capacity.values()):
                await self._sleep_until_wake(poll / 5)
                continue
            started = time.perf_counter()
            try:
                batch = await asyncio.to_thread(
                    self.store.claims.claim_items,
                    self.id,
                    capacity,
                    self.settings.lease_seconds,
                    suspects=not completer.holds_suspects,
                    max_rescues=self.settings.max_rescues,
                    job_ids=self.job_ids,
                )
            except StoreUnavailable as exc:
                self._trouble("claim", exc)
                await self._sleep_until_wake(STORE_RETRY_SECONDS)
                continue
            if batch is None:
                metrics.record_claim(time.perf_counter() - started)
                await self._sleep_until_wake(poll)
                continue
            metrics.record_claim(time.perf_counter() - started, batch.job.handler, len(batch.items))
            if batch.items:
                self._dispatch(batch)
            else:  # e.g. only suspects are due and this worker already runs its one group of them
                await self._sleep_until_wake(poll / 5)

    async def _sleep_until_wake(self, seconds: float) -> None:
        assert self._wake is not None
        await wait_event(self._wake, seconds)
        self._wake.clear()

    def _dispatch(self, batch: ClaimBatch) -> None:
        control = self.controls.hold(batch.job.id, len(batch.items))
        self.completer.track(batch)
        self.executor.dispatch(batch, control)

    # -- side tasks -----------------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            if self.failures is not None:  # summaries of failures not shown yet, once their interval passed
                self.failures.flush()
            try:
                await asyncio.to_thread(
                    self.store.claims.heartbeat, self.id, self.in_flight, self.settings.lease_seconds
                )
            except StoreUnavailable as exc:
                self._trouble("heartbeat", exc)

    async def _maintenance_loop(self) -> None:
        assert self._maintain_now is not None and self.maintenance is not None
        maintenance = self.maintenance
        interval = self.settings.maintenance_interval_ms / 1000.0
        while True:
            await wait_event(self._maintain_now, interval)
            self._maintain_now.clear()
            try:
                await asyncio.to_thread(maintenance.run_once)
            except Exception:  # maintenance retries next round; a failure must not stop the worker
                log.exception("maintenance round failed")

    async def _outbox_loop(self) -> None:
        """Send due notifications until the worker stops; a round that sent something is followed at once by the
        next. A worker limited to some jobs then drains their messages (``outbox_drain_seconds``)."""
        assert self.outbox is not None and self._stop_event is not None
        outbox, poll = self.outbox, self.settings.outbox_poll_interval_ms / 1000.0
        while not self._stopping:
            try:
                sent = await outbox.deliver_due()
            except StoreUnavailable as exc:
                self._trouble("outbox", exc)
                sent = 0
            if not sent:
                await wait_event(self._stop_event, poll)
        if self.job_ids is not None:
            try:
                await outbox.drain(self.settings.outbox_drain_seconds)
            except StoreUnavailable as exc:
                self._trouble("outbox", exc)

    async def _end_outbox(self, task: asyncio.Task[None]) -> None:
        """Let the outbox finish the round it is in (and a job-limited worker's drain), within a bound: a message
        cut off mid-send is sent again by another process once its lease ends."""
        limit = self.settings.outbox_drain_seconds + self.settings.webhook_timeout_seconds
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(task), limit)

    async def _listen_loop(self) -> None:
        """PostgreSQL: wake on NOTIFY from any process that creates or requeues work."""
        async for _ in self.store.listen():
            self._wake_up()

    # -- stopping -------------------------------------------------------------------------------------------

    async def _drain(self, lanes: list[asyncio.Task[None]]) -> None:
        """Graceful stop: release items not yet started; give running ones the grace period, then interrupt."""
        executor, completer = self.executor, self.completer
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        executor.stop_lanes()
        while completer.in_flight - len(completer.outcomes) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await completer.flush()
        executor.interrupt_async(None, "shutdown")
        await asyncio.sleep(0)
        executor.release_leftovers()
        await asyncio.gather(*lanes, return_exceptions=True)
