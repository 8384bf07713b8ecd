"""What the worker needs from the database: a small protocol, so the worker depends on claims and its own
registration, not on the whole store. :class:`batchyard.store.Store` satisfies it (``store.claims``,
``store.workers``); a test may hand in anything shaped the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Protocol

from batchyard.core.records import ClaimBatch, CompletionReport, Outcome, ProgressReport


class Claims(Protocol):
    """The hot path: claim chunks, record outcomes (fenced by lease token), keep leases alive."""

    def claim_items(
        self,
        worker_id: str,
        capacity: Mapping[str, int],
        lease_seconds: float,
        *,
        suspects: bool = ...,
        max_rescues: int = ...,
        job_ids: Sequence[str] | None = ...,
    ) -> ClaimBatch | None: ...

    def complete_items(self, outcomes: Sequence[Outcome], finished_tokens: Sequence[str] = ...) -> CompletionReport: ...

    def job_statuses(self, job_ids: Sequence[str]) -> dict[str, str]: ...

    def heartbeat(self, worker_id: str, in_flight: int, lease_seconds: float) -> None: ...

    def expire_leases_of(self, worker_id: str) -> int: ...


class ProgressRecorder(Protocol):
    """Running items' ``ctx.progress`` reports, written with the worker's flushes."""

    def record(self, reports: Sequence[ProgressReport], finished: Sequence[tuple[str, int]] = ...) -> None: ...


class WorkerRegistration(Protocol):
    """The row a worker keeps about itself (shown by the API, cleaned up by maintenance)."""

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        handlers: list[str],
        concurrency: int,
        jobs: list[str] | None = ...,
    ) -> None: ...

    def set_worker_status(self, worker_id: str, status: str) -> None: ...


class WorkerBackend(Protocol):
    @property
    def claims(self) -> Claims: ...

    @property
    def workers(self) -> WorkerRegistration: ...

    @property
    def progress(self) -> ProgressRecorder: ...

    @property
    def is_postgres(self) -> bool:
        """True when other processes' wake-ups arrive over :meth:`listen`."""
        ...

    def on_wake(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when this process makes work; returns a remover."""
        ...

    def listen(self) -> AsyncIterator[None]:
        """PostgreSQL: one value per wake-up sent by any process."""
        ...


class MaintenanceRound(Protocol):
    """One round of upkeep (rescues, expiry, samples, result files), run by a worker that was given one."""

    def run_once(self) -> object: ...


class OutboxRound(Protocol):
    """Sends due notifications (``batchyard.services.outbox.OutboxDispatcher``), on the worker's event loop."""

    async def deliver_due(self) -> int:
        """One round; how many messages it tried (0: nothing was due)."""
        ...

    async def drain(self, seconds: float) -> bool:
        """For a worker limited to some jobs: keep sending their messages for up to ``seconds``."""
        ...
