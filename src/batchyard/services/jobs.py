"""The service layer: the rules around jobs (validation, defaults, ownership of files, ETA).

CLI commands and HTTP routes call this; it calls the store. Nothing here writes SQL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from batchyard.core.lifecycle import TERMINAL_JOB_STATUSES
from batchyard.core.rate import RECENT_WINDOW_SECONDS, Sample, estimate
from batchyard.core.records import JobQuery, JobRecord, JobSpec, WorkerRecord
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.data.ingest import ItemReader
from batchyard.data.results import RESULT_FILE_NAMES
from batchyard.errors import InvalidRequest, UnknownHandler
from batchyard.registry import HandlerRegistry
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.settings import Settings
from batchyard.store import Store
from batchyard.wire import JobOut

MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_ATTEMPTS_LIMIT = 100
ItemSource = str | Path | BinaryIO | Iterable[Any]


@dataclass(frozen=True)
class JobView:
    """A job as users see it: the record plus throughput and ETA from recent progress samples."""

    job: JobRecord
    items_per_second: float | None
    eta_seconds: float | None

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
    ) -> JobRecord:
        """Validate and create a job; every item is checked before any runs (see :class:`ItemReader`)."""
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
        )
        reader = ItemReader(
            items,
            format=format,
            max_line_bytes=self.settings.max_line_bytes,
            max_problems=self.settings.max_input_errors,
            source_name=source_name,
        )
        return self.store.jobs.create_job(spec, reader, idempotency=idempotency)

    def _handler_defaults(self, handler: str) -> dict[str, Any]:
        if handler in self.registry:
            spec = self.registry.get(handler)
            return {"max_attempts": spec.max_attempts, "timeout": spec.timeout_seconds}
        live = self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds)
        if any(handler in w.handlers for w in live):
            return {}
        known = sorted(set(self.registry.names()) | {h for w in live for h in w.handlers})
        raise UnknownHandler(
            f"no handler named {handler!r} here or on a live worker (known: {', '.join(known) or 'none'}); "
            "register it with @app.handler or start a worker that has it",
            param="handler",
        )

    # -- reading -----------------------------------------------------------------------------------------------

    def view(self, job: JobRecord, samples: list[tuple[float, int, int]] | None = None) -> JobView:
        """The job with its rate and ETA; ``samples`` (recent progress samples) are read if not given."""
        now = time.time()
        if samples is None:
            samples = self.store.jobs.recent_samples(job.id, now - RECENT_WINDOW_SECONDS)
        points = [Sample(at, done) for at, done, _ in samples]
        if job.status in ("running", "paused", "cancelling", "queued") and job.started_at:
            points.append(Sample(now, job.done))
        if len(points) < 2 and job.started_at:  # not sampled yet: the average since the start
            points = [Sample(job.started_at, 0), Sample(job.finished_at or now, job.done)]
        est = estimate(points, job.queued + job.running)
        eta = est.eta_seconds if job.status not in TERMINAL_JOB_STATUSES and job.status != "paused" else None
        return JobView(job, est.items_per_second, eta)

    def views(self, records: Sequence[JobRecord]) -> list[JobView]:
        """Views of a page of jobs with one query for all their samples."""
        live = [j.id for j in records if j.status not in TERMINAL_JOB_STATUSES]
        samples = self.store.jobs.samples_for(live, time.time() - RECENT_WINDOW_SECONDS)
        return [self.view(j, samples.get(j.id, [])) for j in records]

    def job_record(self, job_id: str, principal: Principal = LOCAL_ADMIN, *, write: bool = False) -> JobRecord:
        """The job if ``principal`` may see it (and change it, with ``write``). Someone else's job is NotFound,
        worded exactly like a missing one; a viewer asking to change anything is Forbidden."""
        if write:
            principal.require_write()
        job = self.store.jobs.get_job(job_id)
        principal.check_owner(job.owner, f"job {job_id!r}", param="job_id")
        return job

    def get(self, job_id: str, principal: Principal = LOCAL_ADMIN) -> JobView:
        return self.view(self.job_record(job_id, principal))

    def list_jobs(
        self, query: JobQuery | None = None, *, principal: Principal = LOCAL_ADMIN, **filters: Any
    ) -> list[JobView]:
        """A page of jobs the principal may see (non-admins only ever see their own owner's)."""
        q = query or JobQuery(**filters)
        if not principal.is_admin:
            q = dataclasses.replace(q, owner=principal.owner)
        return self.views(self.store.jobs.list_jobs(q))

    def live_workers(self) -> list[WorkerRecord]:
        return self.store.workers.list_workers(live_within=self.settings.worker_stale_seconds)

    def has_live_worker_for(self, handler: str) -> bool:
        return any(handler in w.handlers for w in self.live_workers())

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

    def retry_failed(
        self, job_id: str, principal: Principal = LOCAL_ADMIN, *, actor: str | None = None
    ) -> tuple[JobView, int]:
        self.job_record(job_id, principal, write=True)
        job, n = self.store.jobs.retry_failed(job_id, actor=actor or principal.owner)
        for name in RESULT_FILE_NAMES:
            self.storage.delete(f"{job_prefix(job_id)}/{name}")
        return self.view(job), n

    def delete(self, job_id: str, principal: Principal = LOCAL_ADMIN, *, actor: str | None = None) -> JobRecord:
        self.job_record(job_id, principal, write=True)
        job = self.store.jobs.delete_job(job_id, actor=actor or principal.owner)
        self.storage.delete_prefix(job_prefix(job_id))
        return job


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
