"""The live change feed behind ``GET /api/v1/stream``: one poller per process, fanned out to every subscriber.

Every visible change to a job (created, claimed, items finished, paused, cancelled, failed ...) sets
``jobs.last_activity_at`` in the same transaction. The feed's single poller reads, every ``poll_interval``
seconds, the ids of jobs touched since its high-water mark (an index range scan on ``ix_jobs_activity``), loads
the ones that changed, renders each once as a Server-Sent Event, and hands it to every subscriber allowed to see
the job's owner. A hundred open streams therefore cost one small query per interval, not a hundred; ``polls``
counts them. The poller starts with the first subscriber and stops when the last one leaves.

Details that make it correct:

- Ordering by a timestamp is not commit order on PostgreSQL: a transaction may take its ``now`` before another
  that commits first. The poller re-reads a short ``lookback`` behind its high-water mark and remembers the
  activity time it last sent per job, so a late committer is still delivered, and nothing twice.
- Result files are recorded (``finalizing`` -> ``completed``) without touching ``last_activity_at``, so the
  feed also re-reads the few jobs it last saw waiting for their files and sends them once the files are written.
- Each subscriber has a bounded mailbox keyed by job: a newer state of a job replaces the one still waiting,
  and when more than ``mailbox_size`` jobs wait, the oldest are dropped. A slow client never holds anyone up.
- The event id is a cursor (when the job changed, and its id). A reconnect with ``Last-Event-ID`` replays, from
  the database, the jobs changed since slightly before that cursor (the same lookback), then continues live.
  Events carry a job's whole state, so the few repeats a lookback can cause are harmless.
- A stream lives longer than the request that authenticated it, so every ``credential_check_interval`` seconds
  the poller asks, in two queries for all streams, whether each stream's API key or session still holds. A
  stream whose key was revoked or whose session ended (signed out, revoked with its key, expired) gets an ``end``
  event and closes; its reconnect is then refused (401).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.applications import Starlette

from batchyard.app import Batchyard
from batchyard.core.cursors import FEED_CURSOR
from batchyard.core.lifecycle import JobStatus
from batchyard.core.records import JobRecord
from batchyard.errors import FeedClosed, StoreUnavailable
from batchyard.services.auth import Credential, Principal
from batchyard.wire import JobOut

log = logging.getLogger("batchyard.api.feed")

POLL_INTERVAL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
LOOKBACK_SECONDS = 5.0
MAILBOX_SIZE = 1000
POLL_LIMIT = 1000
REPLAY_LIMIT = 500
MAX_AWAITING_FILES = 1000
RETRY_MILLISECONDS = 2000
CREDENTIAL_CHECK_SECONDS = 5.0
MAX_BACKOFF_FACTOR = 20  # after failed polls, wait up to 20 intervals before the next

# Statuses in which a job waits for its result files: the change of files_written_at is not an "activity".
_AWAITING_FILES = frozenset({JobStatus.FINALIZING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.EXPIRED})


# -- events and cursors -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobChange:
    """One job's new state, rendered once as a Server-Sent Event and shared by every subscriber."""

    job_id: str
    owner: str
    changed_at: float
    cursor: str
    frame: bytes


def changed_at(job: JobRecord) -> float:
    """When the job last changed as a subscriber sees it: its last activity, or its result files being written."""
    at = job.last_activity_at if job.last_activity_at is not None else job.created_at
    return max(at, job.files_written_at or at)


_RESUME_HINT = "send back the id of the last event this stream sent, unchanged"


def encode_cursor(at: float, job_id: str) -> str:
    """An event's id: the position of the change it carries (see the module doc)."""
    return FEED_CURSOR.encode(at, job_id)


def decode_cursor(cursor: str, param: str = "Last-Event-ID") -> tuple[float, str]:
    at, job_id = FEED_CURSOR.decode(cursor, param=param, hint=_RESUME_HINT)
    return float(at), str(job_id)


def sse_frame(event: str, data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


# -- subscribers -------------------------------------------------------------------------------------------------


class Subscription:
    """One open stream: who is listening (and to which job), and its mailbox of changes not yet sent."""

    def __init__(self, principal: Principal, job_id: str | None, capacity: int) -> None:
        self.principal = principal
        self.job_id = job_id
        self.dropped = 0  # changes dropped because the client read too slowly
        self._capacity = capacity
        self._pending: OrderedDict[str, JobChange] = OrderedDict()
        self._ready = asyncio.Event()
        self._closed = False
        self._replayed: dict[str, float] = {}
        self.ended_because: str | None = None  # set when the credential ended: the stream says so, then closes

    @property
    def closed(self) -> bool:
        return self._closed

    def wants(self, change: JobChange) -> bool:
        if self.job_id is not None and change.job_id != self.job_id:
            return False
        if not self.principal.can_see(change.owner):
            return False
        return change.changed_at > self._replayed.get(change.job_id, -math.inf)

    def replayed(self, changes: list[JobChange]) -> None:
        """Skip live changes no newer than what the replay already sent."""
        for change in changes:
            self._replayed[change.job_id] = change.changed_at

    def put(self, change: JobChange) -> None:
        self._pending.pop(change.job_id, None)  # a newer state of the same job replaces the one still waiting
        self._pending[change.job_id] = change
        while len(self._pending) > self._capacity:
            self._pending.popitem(last=False)
            self.dropped += 1
        self._ready.set()

    async def next(self, timeout: float) -> JobChange | None:
        """The oldest waiting change; None after ``timeout`` seconds without one, or once closed and drained."""
        if not self._pending and not self._closed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        if self._pending:
            return self._pending.popitem(last=False)[1]
        return None

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def end(self, reason: str) -> None:
        """Close at once, dropping the changes not yet sent: the caller may no longer see them."""
        self.ended_because = reason
        self._pending.clear()
        self.close()


@dataclass(frozen=True)
class Replay:
    changes: list[JobChange] = field(default_factory=list)
    truncated: bool = False  # more jobs changed than a replay sends: the client should reload its lists


# -- the feed ----------------------------------------------------------------------------------------------------


class JobFeed:
    """Job changes for every open stream of one application, from one shared poller (see the module doc)."""

    def __init__(
        self,
        app: Batchyard,
        *,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        lookback: float = LOOKBACK_SECONDS,
        mailbox_size: int = MAILBOX_SIZE,
        keepalive: float = KEEPALIVE_SECONDS,
        credential_check_interval: float = CREDENTIAL_CHECK_SECONDS,
    ) -> None:
        self.app = app
        self.poll_interval = poll_interval
        self.lookback = lookback
        self.mailbox_size = mailbox_size
        self.keepalive = keepalive
        self.credential_check_interval = credential_check_interval
        self._credentials_checked_at = 0.0  # event-loop time of the last check
        self.polls = 0  # database polls made: one per interval while anyone listens, however many do
        self.pollers_started = 0
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        # Poll state: touched only by the one poll running at a time (in a worker thread).
        self._scan_from = 0.0
        self._scan_after_id: str | None = None
        self._seen: dict[str, float] = {}
        self._awaiting_files: set[str] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def polling(self) -> bool:
        return self._task is not None

    @property
    def closed(self) -> bool:
        return self._closed

    async def subscribe(self, principal: Principal, job_id: str | None = None) -> Subscription:
        """Register a stream; it receives changes made from the moment this returns."""
        if self._closed:
            raise FeedClosed("the server is shutting down; reconnect in a moment")
        sub = Subscription(principal, job_id, self.mailbox_size)
        self._subscribers.add(sub)
        if self._task is None:
            self._started = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._started), name="batchyard-job-feed")
            self.pollers_started += 1
        started = self._started
        try:
            if started is not None:
                await asyncio.shield(started)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a stream (idempotent). The poller stops on its next tick once nobody listens."""
        self._subscribers.discard(sub)
        sub.close()

    async def replay(self, sub: Subscription, cursor: tuple[float, str]) -> Replay:
        """The subscriber's visible jobs changed since ``cursor`` (a little before, see the module doc)."""
        at, last_job_id = cursor

        def load() -> Replay:
            records, truncated = self.app.activity.changed_since(
                at - self.lookback, sub.principal, job_id=sub.job_id, limit=REPLAY_LIMIT
            )
            fresh = [r for r in records if not (r.id == last_job_id and changed_at(r) <= at)]
            return Replay(self._render(fresh), truncated)

        replay = await asyncio.to_thread(load)
        sub.replayed(replay.changes)
        return replay

    def close(self) -> None:
        """End every stream and stop polling; new subscriptions are refused. Safe to call more than once."""
        self._closed = True
        self._drop_subscribers()
        self._wake.set()

    async def aclose(self) -> None:
        self.close()
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the poller ----------------------------------------------------------------------------------------------

    async def _run(self, started: asyncio.Future[None]) -> None:
        try:
            try:
                await asyncio.to_thread(self._begin)
            except Exception as exc:  # the subscribers waiting on ``started`` raise it (503 if the store is down)
                started.set_exception(exc)
                started.exception()  # mark it retrieved: they re-raise it themselves
                self._drop_subscribers()
                return
            started.set_result(None)
            await self._poll_until_nobody_listens()
        except Exception:
            # A bug, not the database: end the streams loudly. Browsers reconnect and resume with Last-Event-ID.
            log.exception("job feed: the poller stopped on an unexpected error; ending the open streams")
            self._drop_subscribers()
        finally:
            # No await between the loop's last check and here: a subscriber arriving now starts a new poller.
            self._task = None
            if not started.done():
                started.cancel()

    async def _poll_until_nobody_listens(self) -> None:
        failures = 0
        while self._subscribers and not self._closed:
            self._wake.clear()  # before polling, so a close() during the poll is not missed
            try:
                changes = await asyncio.to_thread(self._poll)
            except Exception as exc:  # the database is down or busy: keep the streams open and try again
                failures += 1
                if failures == 1:
                    log.warning(
                        "job feed: polling for job changes failed (%s); retrying with backoff",
                        exc,
                        exc_info=not isinstance(exc, StoreUnavailable),
                    )
            else:
                if failures:
                    log.info("job feed: polling works again after %d failure(s)", failures)
                failures = 0
                self._dispatch(changes)
                await self._end_streams_whose_credential_ended()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval * min(2**failures, MAX_BACKOFF_FACTOR)):
                    await self._wake.wait()

    async def _end_streams_whose_credential_ended(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._credentials_checked_at < self.credential_check_interval:
            return
        self._credentials_checked_at = loop.time()
        credentials = {sub.principal.credential for sub in self._subscribers if sub.principal.credential}
        if not credentials:
            return
        try:
            ended = await asyncio.to_thread(self._ended, credentials)
        except Exception as exc:  # the database is down: nobody can revoke anything either; check next time
            log.warning("job feed: could not re-check the streams' credentials (%s)", exc)
            return
        for sub in list(self._subscribers):
            if sub.principal.credential in ended:
                self._subscribers.discard(sub)
                sub.end("the API key was revoked or the session ended; sign in again")

    def _ended(self, credentials: set[Credential]) -> set[Credential]:
        return self.app.auth.ended(credentials)

    def _drop_subscribers(self) -> None:
        for sub in list(self._subscribers):
            self.unsubscribe(sub)

    def _begin(self) -> None:
        """Start from now: jobs touched within the lookback before now count as already sent."""
        activity = self.app.activity
        now = activity.clock()
        self._scan_from = now - self.lookback
        self._scan_after_id = None
        rows = activity.touched_since(self._scan_from, POLL_LIMIT)
        self._seen = {job_id: at for job_id, at in rows if at <= now}
        self._awaiting_files = set()

    def _poll(self) -> list[JobChange]:
        self.polls += 1
        activity = self.app.activity
        rows = activity.touched_since(self._scan_from, POLL_LIMIT, after_id=self._scan_after_id)
        fresh = {job_id for job_id, at in rows if at > self._seen.get(job_id, -math.inf)}
        wanted = fresh | self._awaiting_files
        records = activity.jobs(sorted(wanted)) if wanted else []
        changed: list[JobRecord] = []
        found: set[str] = set()
        for record in records:
            found.add(record.id)
            if record.id in fresh or record.files_written_at is not None:
                changed.append(record)
            if record.last_activity_at is not None:
                self._seen[record.id] = max(record.last_activity_at, self._seen.get(record.id, -math.inf))
            if record.status in _AWAITING_FILES and record.files_written_at is None:
                if len(self._awaiting_files) < MAX_AWAITING_FILES:
                    self._awaiting_files.add(record.id)
            else:
                self._awaiting_files.discard(record.id)
        self._awaiting_files &= found  # deleted jobs
        self._advance(rows)
        changed.sort(key=lambda r: (changed_at(r), r.id))
        return self._render(changed)

    def _advance(self, rows: list[tuple[str, float]]) -> None:
        if len(rows) >= POLL_LIMIT:  # a full page: continue right after it, lookback comes back next time
            self._scan_from, self._scan_after_id = rows[-1][1], rows[-1][0]
        elif rows:
            self._scan_from = max(self._scan_from, rows[-1][1] - self.lookback)
            self._scan_after_id = None
        else:
            self._scan_after_id = None
        self._seen = {job_id: at for job_id, at in self._seen.items() if at >= self._scan_from}

    def _render(self, records: list[JobRecord]) -> list[JobChange]:
        changes = []
        for record, view in zip(records, self.app.service.views(records), strict=True):  # one query each for all
            at = changed_at(record)
            cursor = encode_cursor(at, record.id)
            data = JobOut.of(view).model_dump_json()
            changes.append(JobChange(record.id, record.owner, at, cursor, sse_frame("job", data, cursor)))
        return changes

    def _dispatch(self, changes: list[JobChange]) -> None:
        for change in changes:
            for sub in self._subscribers:
                if sub.wants(change):
                    sub.put(change)


# -- one feed per application --------------------------------------------------------------------------------------


def job_feed(api: Starlette) -> JobFeed:
    """The application's feed, made on first use in the running event loop."""
    feed: JobFeed | None = getattr(api.state, "job_feed", None)
    loop = asyncio.get_running_loop()
    if feed is None or getattr(api.state, "job_feed_loop", None) is not loop:
        feed = JobFeed(api.state.batchyard)
        api.state.job_feed = feed
        api.state.job_feed_loop = loop
    return feed


async def close_job_feed(api: Starlette) -> None:
    """End every open stream and stop the poller (at application shutdown)."""
    feed: JobFeed | None = getattr(api.state, "job_feed", None)
    if feed is not None:
        api.state.job_feed = None
        api.state.job_feed_loop = None
        await feed.aclose()
