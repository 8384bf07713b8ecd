"""The completer: records finished items' outcomes in batches, and keeps the worker's books on what it holds.

Handlers' outcomes queue up here (from the event loop and from sync threads) and are written in one transaction
per flush (River's job completer). The books -- items outstanding per handler, items left per lease, suspect
leases -- say how much the worker may claim next; a flush frees capacity before it writes, so the next claim
overlaps the write instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchyard import metrics
from batchyard.core.asyncwait import wait_event
from batchyard.core.records import ClaimBatch, CompletionReport, Outcome
from batchyard.core.storable import json_text, storable
from batchyard.errors import StoreUnavailable
from batchyard.settings import Settings
from batchyard.worker.backend import WorkerBackend
from batchyard.worker.control import JobControls
from batchyard.worker.progress import ProgressBook
from batchyard.worker.trouble import STORE_RETRY_SECONDS, StoreTrouble

log = logging.getLogger("batchyard.worker")

FINAL_FLUSH_TRIES = 10


@dataclass
class WorkerStats:
    claimed: int = 0
    flushed: int = 0
    accepted: int = 0


class Completer:
    """Outcomes in, batched writes out; the leases and capacity of one worker.

    ``lanes`` caps what may be outstanding per handler (twice its lanes: one running, one waiting). ``controls``
    are released as their jobs' items are recorded. ``on_flushed`` hears of every recorded batch (to wake the
    claim loop, and maintenance when jobs settled)."""

    def __init__(
        self,
        store: WorkerBackend,
        settings: Settings,
        worker_id: str,
        lanes: dict[str, int],
        *,
        controls: JobControls | None = None,
        trouble: StoreTrouble | None = None,
        stats: WorkerStats | None = None,
        on_flushed: Callable[[CompletionReport], None] | None = None,
        progress: ProgressBook | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.lanes = lanes
        self.controls = controls if controls is not None else JobControls()
        self.stats = stats if stats is not None else WorkerStats()
        self._trouble = trouble if trouble is not None else StoreTrouble(worker_id)
        self._on_flushed = on_flushed
        self.progress = progress
        self._progress_due = 0.0  # monotonic time of the next progress write allowed
        self.outcomes: collections.deque[Outcome] = collections.deque()
        self._outstanding = dict.fromkeys(lanes, 0)
        self._in_flight_total = 0
        self._lease_left: dict[str, int] = {}
        self._lease_handler: dict[str, str] = {}
        self._suspect_leases: set[str] = set()  # leases of items handed back by a crash: one at a time
        self._flush_lock = asyncio.Lock()
        self._flush_now: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pause_lock = threading.Lock()
        self._pauses_unwritten = 0  # pause outcomes added or about to be, not yet written

    # -- books ----------------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Items claimed and not yet recorded."""
        return sum(self._outstanding.values())

    @property
    def holds_suspects(self) -> bool:
        """Whether a lease of suspects is still out: a worker runs one group of them at a time."""
        return bool(self._suspect_leases)

    def capacity(self) -> dict[str, int]:
        """How many items of each handler the next claim may take."""
        chunk = self.settings.claim_chunk
        return {name: min(chunk, 2 * lanes - self._outstanding[name]) for name, lanes in self.lanes.items()}

    def track(self, batch: ClaimBatch) -> None:
        """Book a claimed batch: its items are outstanding until their outcomes are recorded."""
        n = len(batch.items)
        handler = batch.job.handler
        self._outstanding[handler] += n
        self._in_flight_total += n
        self._lease_left[batch.lease_token] = n
        self._lease_handler[batch.lease_token] = handler
        if batch.suspect:
            self._suspect_leases.add(batch.lease_token)
        self.stats.claimed += n

    # -- outcomes -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running event loop (early flushes are asked for from it only)."""
        self._flush_now = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def flush_requested(self) -> bool:
        return self._flush_now is not None and self._flush_now.is_set()

    def add(self, outcome: Outcome) -> None:
        """Queue an outcome; thread-safe. Asks for an early flush once half of what is in flight has finished,
        so claims never wait on the timer."""
        outcomes = self.outcomes
        outcomes.append(outcome)
        pending = len(outcomes)
        if (
            self._flush_now is not None
            and threading.get_ident() == self._loop_thread
            and (pending >= self.settings.flush_max_items or 2 * pending >= self._in_flight_total)
        ):
            self._flush_now.set()

    def pause_coming(self) -> None:
        """A handler's pause outcome is about to be added (any thread): flushes look for it until it is written."""
        with self._pause_lock:
            self._pauses_unwritten += 1

    def pause_dropped(self) -> None:
        """The announced pause outcome was not added after all (the item had already ended)."""
        with self._pause_lock:
            self._pauses_unwritten -= 1

    def flush_soon(self) -> None:
        """Ask for a flush now, from any thread (a job pause must not wait for the timer)."""
        flush_now, loop = self._flush_now, self._loop
        if flush_now is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            flush_now.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(flush_now.set)

    async def flush_loop(self) -> None:
        assert self._flush_now is not None, "start() first"
        interval = self.settings.flush_interval_ms / 1000.0
        progress = self.progress
        while True:
            await wait_event(self._flush_now, interval)
            self._flush_now.clear()
            await self.flush()
            if progress is not None and progress.has_work and time.monotonic() >= self._progress_due:
                await self.write_progress()

    async def write_progress(self) -> None:
        """Write the items' latest ``ctx.progress`` reports in one transaction (and delete the rows of items
        that finished); at most once per ``progress_interval_ms``. Kept for the next write if the database is away."""
        assert self.progress is not None
        interval = self.settings.progress_interval_ms / 1000.0
        self._progress_due = time.monotonic() + interval
        reports, finished = self.progress.take(min_age=interval)
        if not reports and not finished:
            return
        try:
            await asyncio.to_thread(self.store.progress.record, reports, finished)
        except StoreUnavailable as exc:
            self.progress.put_back(reports, finished)
            self._trouble("progress", exc)
        except Exception:  # progress is for show: losing one write must not stop the worker
            log.exception("worker %s: writing %d progress reports failed", self.worker_id, len(reports))

    async def flush(self) -> None:
        """Record finished outcomes in one transaction. If the database is unavailable they stay queued here
        and the next flush tries again: nothing is lost, and leases keep the items from running twice meanwhile.

        A flush that has begun finishes even if its caller is cancelled (a stopping worker cancels its flusher):
        its batch is off the queue by then, and its write, still waiting for a thread, would be dropped with it,
        leaving its items running until their leases ran out. The next flush waits for it (the lock)."""
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self.outcomes:
                return
            take = min(len(self.outcomes), self.settings.flush_max_items * 2)
            popleft = self.outcomes.popleft
            batch = [popleft() for _ in range(take)]
            per_token = collections.Counter(o.lease_token for o in batch)
            finished = [token for token, n in per_token.items() if self._lease_left[token] == n]
            # Free the capacity now, so the next claim overlaps this write instead of waiting for it.
            self._free_capacity(per_token, -1)
            started = time.perf_counter()
            try:
                try:
                    report = await asyncio.to_thread(self.store.claims.complete_items, batch, finished)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    log.error(
                        "worker %s: recording %d outcomes failed; recording them one at a time",
                        self.worker_id,
                        len(batch),
                        exc_info=exc,
                    )
                    report = await asyncio.to_thread(self._complete_one_at_a_time, batch, finished)
            except StoreUnavailable as exc:
                self._free_capacity(per_token, +1)
                self.outcomes.extendleft(reversed(batch))
                self._trouble("flush", exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                return
            self._record_metrics(time.perf_counter() - started, batch)
            if self._pauses_unwritten:  # rare: nothing to look at on the hot path
                self._paused_recorded(batch)
            self._forget(batch, per_token)
        self.stats.flushed += len(batch)
        self.stats.accepted += report.accepted
        if self._on_flushed is not None:
            self._on_flushed(report)

    async def final_flush(self) -> None:
        """At the end: record what is left, trying a few times while the database is away."""
        for _ in range(FINAL_FLUSH_TRIES):
            if not self.outcomes:
                return
            try:
                await self.flush()
            except Exception:  # the crash being handled may be the flusher's own
                log.exception("worker %s: final flush failed", self.worker_id)
                break
        if self.outcomes:  # the database stayed away: these items come back when their leases expire
            log.error(
                "worker %s: could not record %d outcomes; their items will run again",
                self.worker_id,
                len(self.outcomes),
            )

    def _complete_one_at_a_time(self, batch: list[Outcome], finished: list[str]) -> CompletionReport:
        """After a flush failed for a reason other than the database being away: find the outcomes that cannot
        be stored and fail their items (``unrecordable``) instead, so one item cannot stop the worker."""
        report = CompletionReport()
        for outcome in batch:
            try:
                single = self.store.claims.complete_items([outcome])
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.error(
                    "worker %s: the outcome of item %s of %s cannot be stored; failing the item",
                    self.worker_id,
                    outcome.seq,
                    outcome.job_id,
                    exc_info=exc,
                    extra={"job_id": outcome.job_id, "item_seq": outcome.seq, "worker_id": self.worker_id},
                )
                error = json_text(
                    {
                        "type": "UnrecordableOutcome",
                        "code": "unrecordable",
                        "retryable": False,
                        "message": "the item's outcome could not be stored: "
                        f"{type(exc).__name__}: {storable(str(exc))[:500]}",
                    }
                )
                substitute = Outcome(
                    outcome.job_id,
                    outcome.seq,
                    outcome.lease_token,
                    "failed",
                    error=error,
                    finished_at=outcome.finished_at,
                    duration=outcome.duration,
                )
                try:
                    single = self.store.claims.complete_items([substitute])
                except StoreUnavailable:
                    raise
                except Exception:  # its lease expires and it comes back as a suspect
                    log.exception(
                        "worker %s: could not fail item %s of %s either",
                        self.worker_id,
                        outcome.seq,
                        outcome.job_id,
                        extra={"job_id": outcome.job_id, "item_seq": outcome.seq, "worker_id": self.worker_id},
                    )
                    continue
            report.accepted += single.accepted
            report.settled += single.settled
        if finished:
            self.store.claims.complete_items([], finished)
        return report

    def _record_metrics(self, seconds: float, batch: list[Outcome]) -> None:
        """One observation per flush and one counter step per (handler, outcome) of the batch: next to nothing."""
        handler_of = self._lease_handler
        kinds = collections.Counter((o.lease_token, o.kind) for o in batch)
        outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        for (token, kind), n in kinds.items():
            outcomes[handler_of[token], kind] += n
        metrics.record_flush(seconds, outcomes)

    def _paused_recorded(self, batch: list[Outcome]) -> None:
        """A handler's pause is written: from now on the job's status says it (the control poll reads it)."""
        for outcome in batch:
            if outcome.kind == "pause":
                with self._pause_lock:
                    self._pauses_unwritten -= 1
                control = self.controls.get(outcome.job_id)
                if control is not None:
                    control.pausing = False

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
        self.controls.release(collections.Counter(o.job_id for o in batch))
