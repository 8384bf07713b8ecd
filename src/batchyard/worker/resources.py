"""Worker resources: per worker process, one value of each registered resource (a browser, a loaded model), made
on the first item that needs it, shared by the worker's items, cleaned up when the worker stops.

Every start and every cleanup runs on the worker's event loop: an async factory must be entered and left on the
loop it lives on, and a sync one runs in a helper thread so the loop keeps serving the other items meanwhile. A
start is one task, so first uses that come together -- async lanes and sync threads alike -- all wait for that
one task: a resource is made exactly once. A start that fails is remembered with the time of its next try
(exponential backoff with jitter, :func:`batchyard.core.backoff.backoff_delay`); until then, items that need it
fail at once with :class:`~batchyard.errors.ResourceUnavailable` (retryable, ``retry_after`` = until that try),
instead of hammering it.

How a handler reaches a resource (``ctx.resources[name]``, :meth:`WorkerResources.__getitem__`):

- up already: the value, from any thread, for the cost of two dictionary reads;
- from a sync handler's thread: the thread waits for the start on the loop;
- from an async handler (on the loop, which cannot wait for itself): :class:`ResourceNeeded` unwinds the handler,
  the executor's lane waits for the start, then calls the handler again from the beginning. Handlers are
  idempotent (delivery is at least once), and reading resources first thing keeps the repeat empty; a handler
  registered with ``resources=[...]`` gets them before it starts, and never repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from batchyard.core.backoff import backoff_delay
from batchyard.core.storable import storable
from batchyard.errors import PermanentError, ResourceUnavailable
from batchyard.registry import ResourceSpec

log = logging.getLogger("batchyard.worker")

MAX_ERROR_CHARS = 500


class ResourceNeeded(BaseException):
    """Raised by ``ctx.resources[name]`` in an async handler when the resource is not up yet: the lane waits for
    it and calls the handler again. A BaseException, so a handler's ``except Exception`` does not swallow it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Slot:
    """One resource in one worker: its value once up, the start in progress, its failures."""

    __slots__ = ("close", "failures", "last_error", "ready", "retry_at", "spec", "starting", "value")

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        self.value: Any = None
        self.ready = False
        self.starting: asyncio.Task[None] | None = None
        self.close: Callable[[], Awaitable[Any]] | None = None
        self.failures = 0
        self.retry_at = 0.0  # monotonic time of the next start allowed after a failure
        self.last_error = ""


class WorkerResources:
    """The resources of one worker (``ctx.resources``): ``resources[name]`` is the value, made on first use."""

    def __init__(
        self,
        specs: Mapping[str, ResourceSpec],
        *,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        worker_id: str = "",
    ) -> None:
        self._slots = {name: _Slot(spec) for name, spec in specs.items()}
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._worker_id = worker_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._started: list[_Slot] = []  # in the order they came up: cleaned up in reverse
        self._closed = False
        self.starts = 0  # start attempts, for tests and logs

    def bind(self) -> None:
        """Called on the worker's event loop when it starts: starts and cleanups run there."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closed = False

    # -- the handler's side ---------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        slot = self._slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self._slots)) or "none"
            raise PermanentError(
                f"no resource named {name!r} in this worker (known: {known}); register it with @app.resource({name!r})",
                code="unknown_resource",
            )
        if slot.ready:
            return slot.value
        loop = self._loop
        if loop is None or loop.is_closed():
            raise ResourceUnavailable(f"resource {name!r} is not available: no worker is running")
        if threading.get_ident() == self._loop_thread:
            raise ResourceNeeded(name)
        return asyncio.run_coroutine_threadsafe(self.acquire(name), loop).result()

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    def names(self) -> list[str]:
        return sorted(self._slots)

    def ready(self, names: tuple[str, ...]) -> bool:
        """Whether every one of ``names`` is up (a cheap check before a handler that declared them)."""
        slots = self._slots
        return all(name in slots and slots[name].ready for name in names)

    def is_up(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.ready

    # -- starting -------------------------------------------------------------------------------------------------

    async def acquire(self, name: str) -> Any:
        """The value of ``name``, started now if it is not up (one start however many ask at once). Raises
        :class:`ResourceUnavailable` if it fails to start or is waiting out its backoff. On the event loop."""
        slot = self._slots.get(name)
        if slot is None:
            return self[name]  # the unknown-resource error
        if slot.ready:
            return slot.value
        if slot.starting is None:
            if self._closed:
                raise ResourceUnavailable(f"resource {name!r} is not available: the worker is stopping")
            wait = slot.retry_at - time.monotonic()
            if wait > 0:
                raise ResourceUnavailable(
                    f"{self._failed(slot)}; next try in {wait:.1f}s (failed {slot.failures} time"
                    f"{'s' if slot.failures != 1 else ''} in a row)",
                    retry_after=wait,
                )
            slot.starting = asyncio.get_running_loop().create_task(self._start(slot), name=f"resource-{name}")
        await asyncio.shield(slot.starting)  # an item that gives up waiting (timeout) leaves the start going
        if slot.ready:
            return slot.value
        raise ResourceUnavailable(self._failed(slot), retry_after=max(0.0, slot.retry_at - time.monotonic()))

    def _failed(self, slot: _Slot) -> str:
        return f"resource {slot.spec.name!r} is unavailable: it failed to start: {slot.last_error}"

    async def _start(self, slot: _Slot) -> None:
        name = slot.spec.name
        began = time.monotonic()
        self.starts += 1
        try:
            value, close = await _enter(slot.spec)
        except Exception as exc:  # the resource's failure, not the worker's: its items fail, it is tried again later
            slot.failures += 1
            delay = backoff_delay(slot.failures, base_seconds=self._retry_base, max_seconds=self._retry_max)
            slot.retry_at = time.monotonic() + delay
            slot.last_error = f"{type(exc).__name__}: {storable(str(exc))[:MAX_ERROR_CHARS]}"
            log.error(
                "worker %s: resource %r failed to start (%d in a row); next try in %.1fs",
                self._worker_id,
                name,
                slot.failures,
                delay,
                exc_info=exc,
            )
            return
        finally:
            slot.starting = None
        slot.value, slot.close, slot.ready = value, close, True
        slot.failures = 0
        self._started.append(slot)
        log.info("worker %s: resource %r is up (%.2fs)", self._worker_id, name, time.monotonic() - began)

    # -- stopping -------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Clean up every resource that is up, the last started first; a start still going is waited for first.
        A cleanup that fails is logged with its traceback and the others still run. On the event loop."""
        self._closed = True
        starting = [slot.starting for slot in self._slots.values() if slot.starting is not None]
        if starting:
            await asyncio.gather(*starting, return_exceptions=True)
        while self._started:
            slot = self._started.pop()
            close, slot.close = slot.close, None
            slot.ready, slot.value = False, None
            if close is None:
                continue
            try:
                await close()
            except Exception:
                log.exception("worker %s: resource %r: its cleanup failed", self._worker_id, slot.spec.name)
            else:
                log.info("worker %s: resource %r closed", self._worker_id, slot.spec.name)


async def _enter(spec: ResourceSpec) -> tuple[Any, Callable[[], Awaitable[Any]]]:
    """Start a resource: its value and the coroutine function that cleans it up."""
    factory = spec.factory
    if spec.is_async_generator:
        acm = contextlib.asynccontextmanager(factory)()
        return await acm.__aenter__(), lambda: acm.__aexit__(None, None, None)
    if spec.is_generator:
        cm = contextlib.contextmanager(factory)()
        return await asyncio.to_thread(cm.__enter__), lambda: asyncio.to_thread(cm.__exit__, None, None, None)
    made = await factory() if inspect.iscoroutinefunction(factory) else await asyncio.to_thread(factory)
    if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
        return await made.__aenter__(), lambda: made.__aexit__(None, None, None)
    if hasattr(made, "__enter__") and hasattr(made, "__exit__"):
        return await asyncio.to_thread(made.__enter__), lambda: asyncio.to_thread(made.__exit__, None, None, None)
    raise TypeError(
        f"resource {spec.name!r}: its factory returned {type(made).__name__}, not a context manager; make it a "
        "generator that yields the value (the code after the yield cleans up)"
    )
