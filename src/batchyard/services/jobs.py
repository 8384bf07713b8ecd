"""The service layer: the rules around jobs (validation, defaults, idempotent creation, ownership, ETA).

CLI commands and HTTP routes call this; it calls the store. Nothing here writes SQL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from batchyard.core.lifecycle import RETRYABLE_ITEM_STATUSES, TERMINAL_JOB_STATUSES, ItemStatus
from batchyard.core.rate import RECENT_WINDOW_SECONDS, Sample, estimate, finished_rate, processed, remaining
from batchyard.core.records import (
    NO_RUNNING_PROGRESS,
    EventRecord,
    JobFilter,
    JobQuery,
    JobRecord,
    JobSpec,
    RunningProgress,
    WorkerRecord,
)
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.data.ingest import ItemReader, detect_format
from batchyard.data.results import RESULT_FILE_NAMES
from batchyard.errors import DuplicateIdempotencyKey, IdempotencyKeyReused, InvalidRequest, NotFound, UnknownHandler
from batchyard.registry import HandlerRegistry
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.services.files import FileService
from batchyard.services.webhooks import check_notify_emails, check_target_url
from batchyard.wire import JobOut

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.settings import Settings
    from batchyard.store import Store

MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_ATTEMPTS_LIMIT = 100
ItemSource = str | Path | BinaryIO | Iterable[Any]


@dataclass(frozen=True)
class JobView:
    """A job as users see it: the record plus throughput and ETA (defined in :mod:`batchyard.core.rate`), how
    many live workers take its items, and what its running items reported (``ctx.progress``)."""

    job: JobRecord
    items_per_second: float | None
    eta_seconds: float | None
    workers_alive: int = 0  # live workers that take this job's items (see JobService.view)
    progress: RunningProgress = NO_RUNNING_PROGRESS

    @property
    def finished(self) -> bool:
        return self.job.status in TERMINAL_JOB_STATUSES and (
            self.job.files_written_at is not None or self.job.total == 0
        )

    @property
    def duration_seconds(self) -> float | None:
        job = self.job
        if job.started_at is None:
            return None
        return (job.finished_at or time.time()) - job.started_at

    def to_dict(self) -> dict[str, Any]:
        """The job's JSON, exactly as the API sends it (see :class:`batchyard.wire.JobOut`)."""
        return JobOut.of(self).model_dump(mode="json")


class JobService:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings, registry: HandlerRegistry) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.registry = registry

    # -- submit -----------------------------------------------------------------------------------------------

    def submit(
        self,
        handler: str,
        items: ItemSource,
        *,
        format: Literal["jsonl", "csv"] | None = None,
        owner: str = "local",
        project: str | None = None,
        priority: int = 0,
        params: dict[str, Any] | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        scheduled_at: float | None = None,
        expires_in_seconds: float | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        concurrency: int | None = None,
        max_failures: int | None = None,
        max_failure_rate: float | None = None,
        source_name: str | None = None,
        idempotency: tuple[str, str] | None = None,
        webhook_url: str | None = None,
        notify_emails: Sequence[str] | None = None,
    ) -> JobRecord:
        """Validate and create a job; every item is checked before any runs (see :class:`ItemReader`).

        ``webhook_url`` gets this job's ``job.*`` events, signed with the owner's default secret (made now if it
        is the owner's first); ``notify_emails`` are emailed when it ends."""
        spec_defaults = self._handler_defaults(handler)
        _check_options(
            priority,
            tags,
            max_attempts,
            timeout_seconds,
            concurrency,
            max_failures,
            max_failure_rate,
            expires_in_seconds,
            params,
            metadata,
        )
        emails = check_notify_emails(notify_emails)
        if webhook_url is not None:
            webhook_url = check_target_url(webhook_url, self.settings, param="webhook_url")
            self.store.outbox.default_secret(owner)  # so the owner can fetch it before the first delivery
        if source_name is None and isinstance(items, str | Path):
            source_name = Path(items).name
        spec = JobSpec(
            handler=handler,
            owner=owner,
            project=project,
            priority=priority,
            params=params,
            description=description,
            tags=tuple(tags),
            metadata=metadata,
            source=source_name,
            scheduled_at=scheduled_at,
            expires_at=time.time() + expires_in_seconds if expires_in_seconds else None,
            max_attempts=max_attempts or spec_defaults.get("max_attempts") or self.settings.max_attempts,
            backoff_base_seconds=self.settings.backoff_base_seconds,
            backoff_max_seconds=self.settings.backoff_max_seconds,
            timeout_seconds=timeout_seconds or spec_defaults.get("timeout"),
            concurrency=concurrency,
            max_failures=max_failures,
            max_failure_rate=max_failure_rate,
            webhook_url=webhook_url,
            notify_emails=emails,
        )
        reader = ItemReader(
            items,
            format=format,
            max_line_bytes=self.settings.max_line_bytes,
            max_problems=self.settings.max_input_errors,
            source_name=source_name,
        )
        return self.store.jobs.create_job(spec, reader, idempotency=idempotency)

    def create(
        self,
        principal: Principal,
        handler: str,
        *,
        items: Sequence[Any] | None = None,
        input_file_id: str | None = None,
        format: Literal["jsonl", "csv"] | None = None,
        idempotency: tuple[str, str] | None = None,
        **options: Any,
    ) -> tuple[JobView, bool]:
        """Create a job for ``principal`` from inline ``items`` or an uploaded file: (the job, True), or with
        ``idempotency`` = (key, fingerprint of the request) a replay: the job that key created, and False.

        The same key with another fingerprint is refused (:class:`IdempotencyKeyReused`). Two requests racing
        with one key create one job: the loser's insert fails on the key's unique index and it answers with
        the winner's job. ``options`` are those of :meth:`submit`."""
        principal.require_write()
        check_item_source(items, input_file_id)
        if idempotency is not None:
            replay = self._replay(principal, *idempotency)
            if replay is not None:
                return replay, False
        try:
            job = self._create(principal, handler, items, input_file_id, format, idempotency, options)
        except DuplicateIdempotencyKey:  # a concurrent request with the same key committed first
            replay = self._replay(principal, *idempotency) if idempotency is not None else None
            if replay is None:
                raise
            return replay, False
        # The job as its creating transaction left it: no need to read it again, and it has no progress samples.
        return self.view(job, samples=[]), True

    def _create(
        self,
        principal: Principal,
        handler: str,
        items: Sequence[Any] | None,
        input_file_id: str | None,
        format: Literal["jsonl", "csv"] | None,
        idempotency: tuple[str, str] | None,
        options: dict[str, Any],
    ) -> JobRecord:
        options = {**options, "owner": principal.owner, "idempotency": idempotency}
        if items is not None:
            return self.submit(handler, items, source_name="inline items", **options)
        files = FileService(self.store, self.storage, self.settings)
        path, name = files.open_for_job(input_file_id or "", principal)
        return self.submit(handler, path, format=format or detect_format(name), source_name=name, **options)

    def _replay(self, principal: Principal, key: str, fingerprint: str) -> JobView | None:
        found = self.store.jobs.find_idempotent_job(principal.owner, key)
        if found is None:
            return None
        if found[0] != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was already used for a different request (job {found[1]}); use a new key"
            )
        return self.get(found[1], principal)

    def _handler_defaults(self, handler: str) -> dict[str, Any]:
        if handler in self.registry:
            spec = self.registry.get(handler)
            return {"max_attempts": spec.max_attempts, "timeout": spec.timeout_seconds}
        live = self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds)
        if any(w.serves(handler) for w in live):
            return {}
        known = sorted(set(self.registry.names()) | {h for w in live if w.jobs is None for h in w.handlers})
        raise UnknownHandler(
            f"no handler named {handler!r} here or on a live worker (known: {', '.join(known) or 'none'}); "
            "register it with @app.handler or start a worker that has it",
            param="handler",
        )

    # -- reading -----------------------------------------------------------------------------------------------

    def view(
        self,
        job: JobRecord,
        samples: list[tuple[float, int, int, float]] | None = None,
        live: Sequence[WorkerRecord] | None = None,
        progress: RunningProgress | None = None,
    ) -> JobView:
        """The job with its rate, ETA and live workers (see :mod:`batchyard.core.rate`) and its running items'
        reports; ``samples`` (recent progress samples), ``live`` (the live workers) and ``progress`` (the running
        items' reports) are read if not given."""
        now = time.time()
        if live is None:
            live = self.live_workers()
        alive = sum(1 for w in live if w.serves(job.handler, job.id))
        done = processed(job.succeeded, job.failed)
        if job.status in TERMINAL_JOB_STATUSES or job.status == "finalizing":
            end = job.finished_at or job.last_activity_at or now  # finalizing: its last item finished then
            return JobView(job, finished_rate(done, job.started_at, end), None, alive)
        if progress is None:
            progress = self._running_progress([job]).get(job.id, NO_RUNNING_PROGRESS)
        if samples is None:
            samples = self.store.jobs.recent_samples(job.id, now - RECENT_WINDOW_SECONDS)
        points = [Sample(at, n + part) for at, n, _, part in samples if at >= now - RECENT_WINDOW_SECONDS]
        if job.started_at is not None:
            if job.started_at >= now - RECENT_WINDOW_SECONDS:  # started inside the window: nothing done then
                points.append(Sample(job.started_at, 0))
            points.append(Sample(now, done + progress.partial))
        est = estimate(points, remaining(job.queued, job.running, progress.partial), workers_alive=alive)
        eta = est.eta_seconds if job.status != "paused" else None
        return JobView(job, est.items_per_second, eta, alive, progress)

    def views(self, records: Sequence[JobRecord]) -> list[JobView]:
        """Views of a page of jobs with one query for all their samples, one for the live workers and, when some
        have running items, two for their items' progress reports."""
        active = [j.id for j in records if j.status not in TERMINAL_JOB_STATUSES]
        samples = self.store.jobs.samples_for(active, time.time() - RECENT_WINDOW_SECONDS)
        live = self.live_workers()
        progress = self._running_progress(records)
        return [self.view(j, samples.get(j.id, []), live, progress.get(j.id, NO_RUNNING_PROGRESS)) for j in records]

    def _running_progress(self, records: Sequence[JobRecord]) -> dict[str, RunningProgress]:
        """What running items of these jobs reported; no query when none of them has a running item."""
        running = [j.id for j in records if j.running > 0 and j.status not in TERMINAL_JOB_STATUSES]
        return self.store.progress.running(running) if running else {}

    def rescue_stale(self, limit: int = 1000) -> int:
        """Return items of expired leases to the queue (one bounded pass); what maintenance does in every
        ``serve`` and ``worker``, for a reader with neither running, so ``running`` falls back to ``queued``
        once the lease of a stopped worker is past. Returns how many items went back."""
        return self.store.claims.rescue_expired_leases(limit=limit, max_rescues=self.settings.max_rescues)

    def job_record(self, job_id: str, principal: Principal = LOCAL_ADMIN, *, write: bool = False) -> JobRecord:
        """The job if ``principal`` may see it (and change it, with ``write``). Someone else's job is NotFound,
        worded exactly like a missing one; a viewer asking to change anything is Forbidden."""
        if write:
            principal.require_write()
        if "\x00" in job_id:  # PostgreSQL refuses NUL in text: it is simply not an id
            raise NotFound(f"no job {job_id!r}", param="job_id")
        job = self.store.jobs.get_job(job_id)
        principal.check_owner(job.owner, f"job {job_id!r}", param="job_id")
        return job

    def get(self, job_id: str, principal: Principal = LOCAL_ADMIN) -> JobView:
        return self.view(self.job_record(job_id, principal))

    def list_jobs(
        self, query: JobQuery | None = None, *, principal: Principal = LOCAL_ADMIN, **filters: Any
    ) -> list[JobView]:
        """A page of jobs the principal may see: non-admins only ever see their own owner's, and naming another
        owner is Forbidden (see :meth:`Principal.owner_filter`)."""
        q = query or JobQuery(**filters)
        q = dataclasses.replace(q, owner=principal.owner_filter(q.owner))
        return self.views(self.store.jobs.list_jobs(q))

    def scoped(self, where: JobFilter, principal: Principal = LOCAL_ADMIN) -> JobFilter:
        """``where`` narrowed to the jobs ``principal`` may see (Forbidden for another owner's, non-admins)."""
        return dataclasses.replace(where, owner=principal.owner_filter(where.owner))

    def count(self, where: JobFilter, principal: Principal = LOCAL_ADMIN) -> int:
        """How many of the jobs ``principal`` may see match ``where``."""
        return self.store.jobs.count_jobs(self.scoped(where, principal))

    def events(
        self, job_id: str, principal: Principal = LOCAL_ADMIN, *, after_id: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        """A page of the job's timeline, oldest first: the events with an id above ``after_id``."""
        self.job_record(job_id, principal)
        return self.store.jobs.list_events(job_id, after_id=after_id, limit=limit)

    def progress(
        self, job_id: str, principal: Principal = LOCAL_ADMIN, *, since: float = 0
    ) -> list[tuple[float, int, int, float]]:
        """The job's progress samples (time, processed, failed, partial) since ``since`` (epoch seconds)."""
        self.job_record(job_id, principal)
        return self.store.jobs.recent_samples(job_id, since)

    def live_workers(self) -> list[WorkerRecord]:
        return self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds)

    def has_live_worker_for(self, handler: str, job_id: str | None = None) -> bool:
        """Whether a live worker takes any job of ``handler`` (or, with ``job_id``, that job). A worker limited to
        some jobs (``Job.wait``'s) serves those jobs only: it never counts for the handler as a whole."""
        return any(w.serves(handler, job_id) for w in self.live_workers())

    # -- moves -----------------------------------------------------------------------------------------------

    # ``actor`` names who acted in the job's timeline (default: the principal's owner).

    def pause(
        self, job_id: str, principal: Principal = LOCAL_ADMIN, *, reason: str | None = None, actor: str | None = None
    ) -> JobView:
        self.job_record(job_id, principal, write=True)
        return self.view(self.store.jobs.pause_job(job_id, actor=actor or principal.owner, reason=reason))

    def resume(self, job_id: str, principal: Principal = LOCAL_ADMIN, *, actor: str | None = None) -> JobView:
        self.job_record(job_id, principal, write=True)
        return self.view(self.store.jobs.resume_job(job_id, actor=actor or principal.owner))

    def cancel(
        self, job_id: str, principal: Principal = LOCAL_ADMIN, *, reason: str | None = None, actor: str | None = None
    ) -> JobView:
        self.job_record(job_id, principal, write=True)
        return self.view(self.store.jobs.cancel_job(job_id, actor=actor or principal.owner, reason=reason))

    def retry(
        self,
        job_id: str,
        principal: Principal = LOCAL_ADMIN,
        *,
        include: Iterable[str] | None = None,
        actor: str | None = None,
        error_signature: str | None = None,
    ) -> tuple[JobView, int]:
        """Queue items of the job again with fresh attempts; returns the job and how many.

        ``include`` names the item statuses to queue again (``failed``, ``cancelled``); by default the failed
        items, and the cancelled ones too when the job itself was cancelled or expired (running it again).
        ``error_signature`` limits it to the failed items of one error group (not with ``include``).
        Succeeded and skipped items keep their results; the result files are written afresh when it ends."""
        self.job_record(job_id, principal, write=True)
        statuses = parse_retry_include(include)
        if error_signature is not None:
            if statuses is not None and statuses != {ItemStatus.FAILED}:
                raise InvalidRequest(
                    "an error group holds failed items only: give error_group or include, not both", param="include"
                )
            statuses = frozenset({ItemStatus.FAILED})
        job, n = self.store.jobs.retry_items(
            job_id, statuses, actor=actor or principal.owner, error_signature=error_signature
        )
        for name in RESULT_FILE_NAMES:
            self.storage.delete(f"{job_prefix(job_id)}/{name}")
        return self.view(job), n

    def retry_failed(
        self,
        job_id: str,
        principal: Principal = LOCAL_ADMIN,
        *,
        actor: str | None = None,
        error_signature: str | None = None,
    ) -> tuple[JobView, int]:
        """:meth:`retry` with its default ``include`` (with ``error_signature``: that error group's failed items)."""
        return self.retry(job_id, principal, actor=actor, error_signature=error_signature)

    def delete(self, job_id: str, principal: Principal = LOCAL_ADMIN, *, actor: str | None = None) -> JobRecord:
        self.job_record(job_id, principal, write=True)
        job = self.store.jobs.delete_job(job_id, actor=actor or principal.owner)
        self.storage.delete_prefix(job_prefix(job_id))
        return job


def parse_retry_include(include: Iterable[str] | None) -> frozenset[ItemStatus] | None:
    """A retry's ``include`` as item statuses (None: the default); anything but failed/cancelled is a 400."""
    if include is None:
        return None
    if isinstance(include, str):
        include = [include]
    allowed = [s.value for s in ItemStatus if s in RETRYABLE_ITEM_STATUSES]  # failed, cancelled
    values = list(include)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        what = f"unknown item status {bad[0]!r}" if bad else "an empty list"
        raise InvalidRequest(
            f"include: {what}; give one or more of {', '.join(allowed)} (the item statuses a retry can queue "
            "again), or leave it out for the default",
            param="include",
        )
    return frozenset(ItemStatus(v) for v in values)


def check_item_source(items: Sequence[Any] | None, input_file_id: str | None) -> None:
    """A job's items come inline or from an uploaded file: exactly one of them."""
    if (items is None) == (input_file_id is None):
        raise InvalidRequest(
            "give the items inline (items) or an uploaded file (input_file_id), not both", param="items"
        )


def _check_options(
    priority: int,
    tags: Sequence[str],
    max_attempts: int | None,
    timeout: float | None,
    concurrency: int | None,
    max_failures: int | None,
    max_failure_rate: float | None,
    expires_in: float | None,
    params: Any,
    metadata: Any,
) -> None:
    def bad(message: str, param: str) -> InvalidRequest:
        return InvalidRequest(message, param=param)

    if not -1000 <= priority <= 1000:
        raise bad("priority must be between -1000 and 1000", "priority")
    if (
        isinstance(tags, str)
        or len(tags) > MAX_TAGS
        or any(not isinstance(t, str) or not t or len(t) > MAX_TAG_CHARS for t in tags)
    ):
        raise bad(f"tags: at most {MAX_TAGS} non-empty strings of up to {MAX_TAG_CHARS} characters", "tags")
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise bad(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}", "max_attempts")
    if timeout is not None and timeout <= 0:
        raise bad("timeout must be positive (seconds)", "timeout")
    if concurrency is not None and concurrency < 1:
        raise bad("concurrency must be at least 1", "concurrency")
    if max_failures is not None and max_failures < 0:
        raise bad("max_failures must be 0 or more", "max_failures")
    if max_failure_rate is not None and not 0 < max_failure_rate < 1:
        raise bad("max_failure_rate is a fraction between 0 and 1, e.g. 0.2", "max_failure_rate")
    if expires_in is not None and expires_in <= 0:
        raise bad("the completion window must be positive (seconds)", "expires_in")
    if params is not None and not isinstance(params, dict):
        raise bad("params must be a JSON object", "params")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad("metadata must be a JSON object", "metadata")
