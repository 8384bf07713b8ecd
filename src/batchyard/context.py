"""What a handler gets besides its item: who it is, its job's params, cancellation, artifacts, usage, progress
inside the item and the worker's resources."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from batchyard.core.storable import is_storable, storable
from batchyard.data.blobs import artifact_prefix, safe_relative_path
from batchyard.errors import ItemCancelled, PermanentError

if TYPE_CHECKING:
    from batchyard.data.blobs import LocalStorage


MAX_USAGE_NAME_CHARS = 100
MAX_PROGRESS_MESSAGE_CHARS = 500


class ProgressSink(Protocol):
    """Where ``ctx.progress`` reports go: the worker's book of them (see :mod:`batchyard.worker.progress`)."""

    def report(self, item: Any, done: float, total: float | None, message: str | None) -> None: ...


class Resources(Protocol):
    """``ctx.resources``: the worker's resources by name (see :meth:`batchyard.Batchyard.resource`)."""

    def __getitem__(self, name: str) -> Any: ...

    def __contains__(self, name: object) -> bool: ...


class _NoResources:
    def __getitem__(self, name: str) -> Any:
        raise PermanentError(
            f"no resource named {name!r}: this context has no worker resources", code="unknown_resource"
        )

    def __contains__(self, name: object) -> bool:
        return False


NO_RESOURCES: Resources = _NoResources()


class JobControl:
    """Per job, per worker: what the job's status tells in-flight items. Shared by all of its items."""

    __slots__ = ("cancelled", "job_id", "paused", "pausing", "progress")

    def __init__(self, job_id: str, progress: ProgressSink | None = None) -> None:
        self.job_id = job_id
        self.cancelled = False  # the job is cancelling, failed or expired: stop
        self.paused = False  # the job is paused: do not start more items
        self.pausing = False  # a handler raised PauseJob and the pause is not written yet: paused meanwhile
        self.progress = progress  # where its items' ctx.progress reports go (None: nowhere)


class ItemContext:
    """Passed to every handler call along with the item.

    ``ctx.cancelled`` turns true when the job is being cancelled or the item timed out; long-running sync
    handlers should check it (or call :meth:`check_cancelled`) between steps. Async handlers are cancelled
    for you. Handlers must be idempotent: an item can run more than once if a worker dies mid-item.

    ``ctx.resources[name]`` is a worker resource (:meth:`batchyard.Batchyard.resource`): made once per worker
    process on first use and shared by its items. An async handler that reads one before it is up is started
    again from the beginning once it is; name it in ``@app.handler(..., resources=[...])`` to have it ready first.
    """

    __slots__ = (
        "_control",
        "_storage",
        "attempt",
        "cost",
        "job_id",
        "key",
        "max_attempts",
        "params",
        "resources",
        "seq",
        "timed_out",
        "usage",
    )

    def __init__(
        self,
        job_id: str,
        key: str,
        seq: int,
        attempt: int,
        max_attempts: int,
        params: dict[str, Any],
        control: JobControl,
        storage: LocalStorage,
        resources: Resources = NO_RESOURCES,
    ) -> None:
        self.job_id = job_id
        self.key = key
        self.seq = seq
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.params = params
        self._control = control
        self._storage = storage
        self.resources = resources
        self.timed_out = False
        self.cost = 0.0
        self.usage: dict[str, float] | None = None

    @property
    def cancelled(self) -> bool:
        return self._control.cancelled or self.timed_out

    def check_cancelled(self) -> None:
        """Raise :class:`~batchyard.errors.ItemCancelled` if the job is being cancelled or the item timed out."""
        if self.cancelled:
            raise ItemCancelled(f"item {self.key} of {self.job_id} was cancelled")

    def save_artifact(self, name: str, data: bytes | str) -> str:
        """Store a file for this item; it lands in the job's ``artifacts.zip`` under ``name``."""
        safe = safe_relative_path(name)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._storage.write_bytes(f"{artifact_prefix(self.job_id)}/{safe}", payload)
        return safe

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far this item is: ``done`` out of ``total`` (any unit: rows, pages, percent), and the
        current step in words (``message``, up to 500 characters). Cheap: call it as often as you like; only
        the latest report is kept and the worker writes it with its next flush (a few times a second at most).

        The job's percent, rate and ETA count the fraction done (``done / total``) of its running items, and
        its JSON shows their latest reports (``current``). Raises ``ValueError`` (failing this item) for a
        ``done`` that is not a finite number of at least 0, or a ``total`` that is not a positive one."""
        _check_amount("done", done, "progress")
        if done < 0:
            raise ValueError(f"progress done must be 0 or more, got {done!r}")
        if total is not None:
            _check_amount("total", total, "progress")
            if total <= 0:
                raise ValueError(f"progress total must be positive (or None), got {total!r}")
        if message is not None:
            if not isinstance(message, str):
                raise ValueError(f"progress message must be text, got {type(message).__name__}")
            message = storable(message[:MAX_PROGRESS_MESSAGE_CHARS])
        sink = self._control.progress
        if sink is not None:
            sink.report(self, float(done), None if total is None else float(total), message)

    def add_usage(self, cost: float = 0.0, **counters: float) -> None:
        """Add cost and named counters (tokens, pages, ...); summed per job and per owner.

        Raises ``ValueError`` (failing this item, nothing else) for a name that is not plain text of at most
        100 characters, or an amount that is not a finite number."""
        _check_amount("cost", cost)
        for name, amount in counters.items():
            if not name or len(name) > MAX_USAGE_NAME_CHARS or not is_storable(name):
                raise ValueError(f"usage name {name[:120]!r} must be 1-{MAX_USAGE_NAME_CHARS} characters of plain text")
            _check_amount(name, amount)
        self.cost += cost
        if counters:
            usage = self.usage if self.usage is not None else {}
            for name, amount in counters.items():
                usage[name] = usage.get(name, 0) + amount
            self.usage = usage


def _check_amount(name: str, amount: object, what: str = "usage") -> None:
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
        raise ValueError(f"{what} {name!r} must be a finite number, got {amount!r}")
