"""The wire schema: how a job, an item, a file, a key, an event, a worker and a page of them look as JSON.

One pydantic model per resource, used everywhere that resource leaves or enters a process: the REST answers (and
so the OpenAPI schema), the SSE frames of ``/api/v1/stream``, the CLI's ``--json`` output, and :mod:`batchyard.client`
parsing the server's answers. Change a field here and every one of them changes together.

Building: each model has one constructor from what the service layer hands out, ``JobOut.of(view)``,
``ItemOut.of(record)``, ``FileOut.of(record)``, ``KeyOut.of(record)``, ``EventOut.of(record)``, ``WorkerOut.of``.
Each validates once (pydantic's validator runs in Rust: a plain dict through ``model_validate`` costs less than
``model_construct``, which runs in Python, for a page of 200 jobs). A route returns the model instance and FastAPI
serializes it as it is, without validating it again.

Parsing JSON from elsewhere (a server's answer, a file) validates it. This is how CLI code gets a job, locally
or from a server, and prints it::

    from batchyard.wire import JobOut, Page
    job = JobOut.of(app.service.get(job_id))          # local: from the service's view
    job = client.get_job(job_id)                      # remote: batchyard.client answers with these models
    job = JobOut.model_validate(data)                 # a dict from elsewhere (one SSE frame's data)
    job = JobOut.model_validate_json(text)            # or straight from the JSON text
    page = Page[JobOut].model_validate(data)          # GET /api/v1/jobs
    job.status, job.counts.succeeded, job.settings.max_attempts, job.avg_item_seconds, job.finished
    job.model_dump(mode="json")                       # exactly the JSON the server sends (for --json)

``model_validate`` also accepts an instance of the model itself (returned as it is).

Unknown fields are ignored when parsing (a newer server may add some); every field the server sends today is
required or has the default the server would send, so no value is invented.

The models carry no docstrings of their own where the OpenAPI schema had none: a docstring becomes the schema's
description. This module imports nothing from the store, the API or the CLI; records are only named for type checking.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from batchyard.core.lifecycle import TERMINAL_JOB_STATUSES, ItemStatus, JobStatus, StatusReason
from batchyard.core.rate import percent
from batchyard.core.records import MAX_CURRENT_ITEMS
from batchyard.core.roles import Role

if TYPE_CHECKING:
    from batchyard.core.history import Period
    from batchyard.core.records import (
        ApiKeyRecord,
        DeliveryRecord,
        EventRecord,
        FileRecord,
        ItemRecord,
        JobRecord,
        MessageRecord,
        WebhookRecord,
        WorkerRecord,
    )
    from batchyard.services.bulk import BulkReport
    from batchyard.services.errorgroups import ErrorGroup
    from batchyard.services.jobs import JobView
    from batchyard.services.quotas import QuotaView
    from batchyard.services.stats import History

T = TypeVar("T")


# -- envelopes ------------------------------------------------------------------------------------------------------


class DataList(BaseModel, Generic[T]):
    """A complete, short list."""

    data: list[T]


class Page(BaseModel, Generic[T]):
    """One page of a long list. Pass ``next_cursor`` back as ``cursor`` for the next page."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(None, description="Opaque; null on the last page")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


# -- jobs -------------------------------------------------------------------------------------------------------


class Counts(BaseModel):
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    skipped: int = Field(0, description="Items the app skipped (SkipItem): processed, not failed")
    done: int = Field(description="Items that will not run again: succeeded + failed + cancelled + skipped")


class JobSettingsOut(BaseModel):
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float | None
    concurrency: int | None
    max_failures: int | None
    max_failure_rate: float | None


class ItemProgressOut(BaseModel):
    """What one running item last reported with ``ctx.progress(done, total, message)``: its current step."""

    key: str = Field(description="The item's key (custom_id)")
    done: float = Field(description="How far it is, in the handler's own unit (pages, rows, percent, ...)")
    total: float | None = Field(description="Out of how much; null when the handler did not say")
    message: str | None = Field(description="The current step in words, e.g. 'importing rows 5,000-10,000'")
    updated_at: float = Field(description="Epoch seconds of the report")


class JobOut(BaseModel):
    id: str
    handler: str
    owner: str
    project: str | None
    status: JobStatus
    status_reason: StatusReason | None = Field(
        None,
        description="Why the job is in its status, when that is worth saying: paused_by_user (a person paused it), "
        "paused_by_handler (the app's handler or admit hook raised PauseJob) or quota_exhausted (a budget of its "
        "owner's quota is spent; it resumes by itself when the budget is raised or its period rolls over); null "
        "otherwise. Cleared by any "
        "move to another status (resume, cancel, ...)",
    )
    status_message: str | None = Field(
        None, description="The message that came with status_reason (PauseJob's text, a pause's reason); or null"
    )
    priority: int
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    params: dict[str, Any]
    source: str | None
    counts: Counts
    percent: float = Field(
        description="Done out of 100: finished items (succeeded, failed, cancelled) plus running items' partial "
        "progress (running_progress), over the total"
    )
    items_per_second: float | None = Field(
        description="Items processed (succeeded + failed, never cancelled, plus running items' partial progress) "
        "per second over the last 60 s of progress samples; for a finished job, over its whole run"
    )
    eta_seconds: float | None = Field(
        description="Seconds until queued + running items are processed at that rate (less the running items' "
        "partial progress); null when unknown (no progress in the window, no live worker, paused or finished)"
    )
    duration_seconds: float | None
    avg_item_seconds: float | None
    cost: float
    usage: dict[str, float]
    error: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    last_activity_at: float | None
    scheduled_at: float | None
    expires_at: float | None
    settings: JobSettingsOut
    result_files: dict[str, Any]
    files_written_at: float | None
    finished: bool = Field(description="Terminal and its result files are written: nothing will change")
    workers_alive: int = Field(
        description="Live workers that take this job's items (its handler, not limited to other jobs); 0 means "
        "nothing is processing it: start a worker"
    )
    running_progress: float = Field(
        0.0,
        description="Running items' partial progress in items' worth: each reporting item's done / total (from "
        "ctx.progress), summed; e.g. 0.5 for one item half done. Counted in percent, items_per_second and "
        "eta_seconds; 0 once the job is finished",
    )
    current: list[ItemProgressOut] = Field(
        default_factory=list,
        description=f"The current step of running items that report progress: their latest reports, most recent "
        f"first, at most {MAX_CURRENT_ITEMS}; empty when none reports (or the job is finished)",
    )
    webhook_url: str | None = Field(
        None,
        description="The job's own webhook: it gets this job's job.* events, signed with the owner's default "
        "secret (GET /api/v1/webhooks/secret); null when none",
    )
    notify_emails: list[str] = Field(
        default_factory=list, description="Addresses emailed when the job ends (completed, failed, cancelled, expired)"
    )

    @classmethod
    def of(cls, view: JobView) -> JobOut:
        """The job as sent, from the service's view of it (record, rate, ETA, live workers, running items'
        progress). No validation."""
        return cls.model_validate(job_fields(view))


class RetryOut(JobOut):
    retried: int = Field(description="Items queued again (failed ones, and cancelled ones when included)")

    @classmethod
    def of_retry(cls, view: JobView, retried: int) -> RetryOut:
        return cls.model_validate({**job_fields(view), "retried": retried})


def job_fields(view: JobView) -> dict[str, Any]:
    """The fields of :class:`JobOut` for a job's view as plain values, to validate."""
    job = view.job
    finished_items = job.succeeded + job.failed
    done = finished_items + job.cancelled + job.skipped
    started_at = job.started_at
    partial = view.progress.partial
    return {
        "id": job.id,
        "handler": job.handler,
        "owner": job.owner,
        "project": job.project,
        "status": job.status,
        "status_reason": job.status_reason,
        "status_message": job.status_message,
        "priority": job.priority,
        "description": job.description,
        "tags": job.tags,
        "metadata": job.metadata,
        "params": job.params,
        "source": job.source,
        "counts": {
            "total": job.total,
            "queued": job.queued,
            "running": job.running,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "cancelled": job.cancelled,
            "skipped": job.skipped,
            "done": done,
        },
        "percent": percent(done, job.total, partial),
        "items_per_second": view.items_per_second,
        "eta_seconds": view.eta_seconds,
        "duration_seconds": None if started_at is None else (job.finished_at or time.time()) - started_at,
        "avg_item_seconds": job.busy_seconds / finished_items if finished_items else None,
        "cost": job.cost,
        "usage": job.usage,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": started_at,
        "finished_at": job.finished_at,
        "last_activity_at": job.last_activity_at,
        "scheduled_at": job.scheduled_at,
        "expires_at": job.expires_at,
        "settings": {
            "max_attempts": job.max_attempts,
            "backoff_base_seconds": job.backoff_base_seconds,
            "backoff_max_seconds": job.backoff_max_seconds,
            "timeout_seconds": job.timeout_seconds,
            "concurrency": job.concurrency,
            "max_failures": job.max_failures,
            "max_failure_rate": job.max_failure_rate,
        },
        "result_files": job.result_files,
        "files_written_at": job.files_written_at,
        "finished": job.status in TERMINAL_JOB_STATUSES and (job.files_written_at is not None or job.total == 0),
        "workers_alive": view.workers_alive,
        "running_progress": round(partial, 4),
        "current": [
            {"key": p.key, "done": p.done, "total": p.total, "message": p.message, "updated_at": p.updated_at}
            for p in view.progress.current
        ],
        "webhook_url": job.webhook_url,
        "notify_emails": job.notify_emails,
    }


class EventOut(BaseModel):
    id: int
    type: str
    at: float
    actor: str | None
    message: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: EventRecord) -> EventOut:
        return cls(id=event.id, type=event.type, at=event.at, actor=event.actor, message=event.message, data=event.data)


class SampleOut(BaseModel):
    at: float
    done: int = Field(description="Items processed by then: succeeded + failed (cancelled items are not counted)")
    failed: int
    partial: float = Field(
        0.0, description="Running items' partial progress then, in items' worth (see JobOut.running_progress)"
    )


# -- items ------------------------------------------------------------------------------------------------------


class ItemErrorOut(BaseModel):
    """The item's last error. Handlers' exceptions carry a traceback; lease expiry and cancellation do not."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(None, description="Exception class name, e.g. ValueError, or LeaseExpired")
    message: str | None = None
    code: str | None = Field(None, description="A stable code when the handler or Batchyard gave one")
    attempt: int | None = Field(None, description="The attempt (1-based) that failed")
    retryable: bool | None = None
    traceback: str | None = Field(None, description="The end of the Python traceback, for handler exceptions")
    detail: dict[str, Any] | None = Field(
        None,
        description="Structured data the handler gave with the failure (ItemError(detail=...)); the openai and "
        "http handlers put the upstream's answer here: {status_code, request_id, body}",
    )


class ItemOut(BaseModel):
    job_id: str
    seq: int = Field(description="0-based position in the job's input")
    key: str = Field(description="The item's key (custom_id), unique in its job")
    status: ItemStatus
    attempts: int = Field(description="Attempts started so far")
    rescues: int = Field(
        0,
        description="Times a worker died while running it: not counted as attempts; at "
        "BATCHYARD_MAX_RESCUES the item is set aside as failed (code poison)",
    )
    payload: Any = Field(None, description="The item as submitted; only when getting one item (null in lists)")
    result: Any = Field(None, description="What the handler returned, once succeeded")
    error: ItemErrorOut | None = Field(
        None, description="The last error, if an attempt failed; for a skipped item, why (type SkipItem, code skipped)"
    )
    started_at: float | None = Field(None, description="Epoch seconds the last attempt started")
    finished_at: float | None = Field(None, description="Epoch seconds the item finished")
    duration_seconds: float | None = Field(None, description="Time of the last attempt, once finished")
    usage: dict[str, float] | None = Field(None, description="Usage counters the handler added")

    @classmethod
    def of(cls, item: ItemRecord) -> ItemOut:
        duration = None
        if item.started_at is not None and item.finished_at is not None:
            duration = max(0.0, item.finished_at - item.started_at)
        return cls.model_validate(
            {
                "job_id": item.job_id,
                "seq": item.seq,
                "key": item.key,
                "status": item.status,
                "attempts": item.attempts,
                "rescues": item.rescues,
                "payload": item.payload,
                "result": item.result,
                "error": item.error or None,
                "started_at": item.started_at,
                "finished_at": item.finished_at,
                "duration_seconds": duration,
                "usage": item.usage,
            }
        )


# -- history (analytics) ---------------------------------------------------------------------------------------


class HistoryJobs(BaseModel):
    """Jobs that finished, by how they ended."""

    total: int
    completed: int
    failed: int
    cancelled: int
    expired: int


class HistoryPeriodOut(BaseModel):
    start: float = Field(description="Epoch seconds (UTC); buckets start on the hour or at midnight UTC")
    end: float
    jobs: HistoryJobs
    items_succeeded: int
    items_failed: int
    success_rate: float | None = Field(description="Succeeded / (succeeded + failed) items; null with none")
    avg_duration_seconds: float | None = Field(description="Job duration (finished - started), average")
    p50_duration_seconds: float | None
    p95_duration_seconds: float | None
    items_per_second: float = Field(description="Items processed by the jobs that finished here, per second")
    cost: float

    @classmethod
    def of(cls, period: Period) -> HistoryPeriodOut:
        return cls.model_validate(
            {
                "start": period.start,
                "end": period.end,
                "jobs": {"total": period.jobs_total, **period.jobs},
                "items_succeeded": period.succeeded,
                "items_failed": period.failed,
                "success_rate": period.success_rate,
                "avg_duration_seconds": period.avg_duration,
                "p50_duration_seconds": period.p50_duration,
                "p95_duration_seconds": period.p95_duration,
                "items_per_second": period.items_per_second,
                "cost": period.cost,
            }
        )


class HistoryJobOut(BaseModel):
    """One finished job's processing time, throughput and cost (the "recent batches" chart)."""

    id: str
    handler: str
    owner: str
    project: str | None
    status: JobStatus
    description: str | None
    total: int
    succeeded: int
    failed: int
    cancelled: int
    started_at: float | None
    finished_at: float | None
    duration_seconds: float | None
    items_per_second: float | None = Field(description="(succeeded + failed) / duration")
    cost: float

    @classmethod
    def of(cls, job: JobRecord) -> HistoryJobOut:
        duration = None
        if job.started_at is not None and job.finished_at is not None:
            duration = max(0.0, job.finished_at - job.started_at)
        processed = job.succeeded + job.failed
        return cls.model_validate(
            {
                "id": job.id,
                "handler": job.handler,
                "owner": job.owner,
                "project": job.project,
                "status": job.status,
                "description": job.description,
                "total": job.total,
                "succeeded": job.succeeded,
                "failed": job.failed,
                "cancelled": job.cancelled,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
                "duration_seconds": duration,
                "items_per_second": processed / duration if duration else None,
                "cost": job.cost,
            }
        )


class HistoryOut(BaseModel):
    """Finished jobs over a time range, from their counters: per bucket, in total, and the latest ones."""

    since: float
    until: float
    bucket: Literal["hour", "day"]
    owner: str | None = Field(description="Whose jobs are counted; null: every owner (admins)")
    totals: HistoryPeriodOut
    buckets: list[HistoryPeriodOut] = Field(description="Every bucket of the range in order, empty ones too")
    recent: list[HistoryJobOut] = Field(description="The jobs that finished last, latest first")

    @classmethod
    def of(cls, history: History) -> HistoryOut:
        return cls(
            since=history.since,
            until=history.until,
            bucket=history.bucket,  # type: ignore[arg-type]
            owner=history.where.owner,
            totals=HistoryPeriodOut.of(history.total),
            buckets=[HistoryPeriodOut.of(b) for b in history.buckets],
            recent=[HistoryJobOut.of(j) for j in history.recent],
        )


# -- bulk actions ---------------------------------------------------------------------------------------------


class BulkResultOut(BaseModel):
    id: str
    ok: bool = Field(description="The move was made")
    outcome: Literal["done", "skipped", "not_found", "forbidden", "failed"] = Field(
        description="done; skipped: the job's status does not allow the move (error says why); not_found: no such "
        "job, or another owner's; forbidden: the key may not; failed: another error (in error)"
    )
    status: str | None = Field(None, description="The job's status after the move (`deleted` once deleted)")
    error: dict[str, Any] | None = None


class BulkOut(BaseModel):
    action: str
    dry_run: bool
    matched: int = Field(description="Jobs named that the caller may see, or jobs matching the filter")
    affected: int = Field(
        description="Dry run: how many of them the move applies to (their status allows it; retry: they have "
        "failed items). Real run: how many were moved"
    )
    remaining: int = Field(0, description="Real run by filter: jobs still eligible past this call's limit")
    results: list[BulkResultOut] = Field(description="Real runs: one per job tried, in order; empty for a dry run")

    @classmethod
    def of(cls, report: BulkReport) -> BulkOut:
        return cls.model_validate(
            {
                "action": report.action,
                "dry_run": report.dry_run,
                "matched": report.matched,
                "affected": report.affected,
                "remaining": report.remaining,
                "results": [
                    {"id": r.id, "ok": r.outcome == "done", "outcome": r.outcome, "status": r.status, "error": r.error}
                    for r in report.results
                ],
            }
        )


# -- error groups ----------------------------------------------------------------------------------------------


class ErrorSampleOut(BaseModel):
    key: str
    seq: int = Field(description="0-based position in the job's input")
    attempts: int
    finished_at: float | None
    error: ItemErrorOut | None = Field(description="The item's own error, as it was (not normalized)")


class ErrorGroupOut(BaseModel):
    """A job's failed items whose errors share a signature: the same type, code and message once the parts that
    differ between items (numbers, ids, uuids, paths, quoted strings, URLs, e-mail addresses) are masked."""

    signature: str = Field(description="Stable id of the group (hex); pass it to retry or export the group")
    type: str | None = Field(description="Exception class name, e.g. ValueError")
    code: str | None
    message: str = Field(description="The normalized message, e.g. `user <num> not found at <path>`")
    count: int = Field(description="Failed items in the group now")
    first_seen: float | None = Field(description="When the first of them failed (epoch seconds)")
    last_seen: float | None = Field(description="When the latest of them failed")
    samples: list[ErrorSampleOut] = Field(description="The group's first items in input order")

    @classmethod
    def of(cls, group: ErrorGroup) -> ErrorGroupOut:
        return cls.model_validate(
            {
                "signature": group.record.signature,
                "type": group.error_type,
                "code": group.code,
                "message": group.message,
                "count": group.record.count,
                "first_seen": group.record.first_seen,
                "last_seen": group.record.last_seen,
                "samples": [
                    {
                        "key": item.key,
                        "seq": item.seq,
                        "attempts": item.attempts,
                        "finished_at": item.finished_at,
                        "error": item.error or None,
                    }
                    for item in group.samples
                ],
            }
        )


# -- files, keys, workers, handlers ------------------------------------------------------------------------------


class FileOut(BaseModel):
    id: str = Field(description="file_<24 hex digits>")
    object: Literal["file"] = "file"
    owner: str
    filename: str
    purpose: str
    bytes: int = Field(description="Size in bytes")
    sha256: str = Field(description="SHA-256 of the content, hex")
    created_at: float = Field(description="Epoch seconds")
    expires_at: float | None = None

    @classmethod
    def of(cls, record: FileRecord) -> FileOut:
        return cls(
            id=record.id,
            object="file",
            owner=record.owner,
            filename=record.filename,
            purpose=record.purpose,
            bytes=record.bytes,
            sha256=record.sha256,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )


class QuotaAmounts(BaseModel):
    items: int | None
    tokens: int | None
    cost: float | None


class QuotaOut(BaseModel):
    """An owner's (or one project's) quota, and where it stands this period. ``limited`` false: no quota is set
    and nothing is limited."""

    owner: str
    project: str | None
    limited: bool
    period: Literal["day", "month", "total"] | None = Field(
        description="day and month are calendar periods in UTC; total is a balance that never resets"
    )
    items: int | None = Field(description="Items that may start in a period (a retry does not count again)")
    tokens: int | None = Field(description="Tokens that may be spent in a period (checked before each claim)")
    cost: float | None = Field(description="Cost that may be spent in a period (checked before each claim)")
    max_running: int | None = Field(description="Items of this scope running at once, at most")
    usage: QuotaAmounts | None = Field(description="Spent this period (counted while a quota is set)")
    remaining: QuotaAmounts | None = Field(description="Left this period; null for a budget without a limit")
    running: int = Field(description="Items of this scope running now")
    period_start: float | None
    resets_at: float | None = Field(description="When the period's budgets start again; null for total")
    exhausted: Literal["items", "tokens", "cost"] | None = Field(
        description="The budget that is spent (its jobs are paused with status_reason quota_exhausted); or null"
    )
    paused_jobs: int = Field(description="Jobs paused because a budget of this quota is spent")
    resumed_jobs: list[str] = Field(
        default_factory=list, description="Jobs this change resumed (in the answer to a PUT or DELETE)"
    )

    @classmethod
    def of(cls, view: QuotaView) -> QuotaOut:
        q, used = view.limits, view.used
        remaining = None
        if q is not None and used is not None:
            remaining = {
                "items": None if q.items is None else max(0, q.items - used.items),
                "tokens": None if q.tokens is None else max(0, q.tokens - used.tokens),
                "cost": None if q.cost is None else max(0.0, q.cost - used.cost),
            }
        return cls.model_validate(
            {
                "owner": view.owner,
                "project": view.project,
                "limited": q is not None,
                "period": q.period if q else None,
                "items": q.items if q else None,
                "tokens": q.tokens if q else None,
                "cost": q.cost if q else None,
                "max_running": q.max_running if q else None,
                "usage": None if used is None else {"items": used.items, "tokens": used.tokens, "cost": used.cost},
                "remaining": remaining,
                "running": view.running,
                "period_start": view.period_start,
                "resets_at": view.resets_at,
                "exhausted": view.exhausted.value if view.exhausted else None,
                "paused_jobs": view.paused_jobs,
                "resumed_jobs": list(view.resumed),
            }
        )


class KeyOut(BaseModel):
    id: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    owner: str
    role: Role
    name: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyOut:
        return cls(**_key_fields(record))


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown only this once")

    @classmethod
    def of_new(cls, key: str, record: ApiKeyRecord) -> NewKeyOut:
        return cls(**_key_fields(record), key=key)


def _key_fields(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "owner": record.owner,
        "role": record.role,
        "name": record.name,
        "created_at": record.created_at,
        "last_used_at": record.last_used_at,
        "revoked_at": record.revoked_at,
    }


# -- webhooks ---------------------------------------------------------------------------------------------------


class WebhookOut(BaseModel):
    id: str
    owner: str
    url: str
    events: list[str] = Field(description="The events it gets; empty: every event")
    created_at: float

    @classmethod
    def of(cls, record: WebhookRecord) -> WebhookOut:
        return cls(id=record.id, owner=record.owner, url=record.url, events=record.events, created_at=record.created_at)


class NewWebhookOut(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_...): shown only this once")

    @classmethod
    def of_new(cls, record: WebhookRecord, secret: str) -> NewWebhookOut:
        return cls(**WebhookOut.of(record).model_dump(), secret=secret)


class WebhookSecretOut(BaseModel):
    owner: str
    secret: str = Field(description="The owner's default signing secret (whsec_...), for jobs' own webhook_url")


class DeliveryOut(BaseModel):
    """One delivery attempt."""

    id: str = Field(description="The attempt's id (redeliver with it)")
    webhook_id: str = Field(description="The message's webhook-id header: the same on every retry and redelivery")
    event_type: str
    job_id: str
    at: float = Field(description="When the attempt ended (epoch seconds)")
    duration_ms: float
    status_code: int | None = Field(description="The receiver's final HTTP status; null when none came")
    error: str | None = Field(description="Why it failed (a status, a timeout, a refused address); null if delivered")
    outcome: Literal["delivered", "failed", "gave_up"] = Field(
        description="delivered (2xx), failed (will be retried) or gave_up (the retry schedule is used up)"
    )
    message_status: Literal["pending", "delivered", "gave_up"] = Field(description="The message's status now")

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=str(record.id),
            webhook_id=record.message_id,
            event_type=record.event_type,
            job_id=record.job_id,
            at=record.at,
            duration_ms=record.duration_ms,
            status_code=record.status_code,
            error=record.error,
            outcome=record.outcome,  # type: ignore[arg-type]
            message_status=record.message_status,  # type: ignore[arg-type]
        )


class RedeliveryOut(BaseModel):
    webhook_id: str = Field(description="The message's webhook-id (unchanged)")
    event_type: str
    job_id: str
    status: Literal["pending", "delivered", "gave_up"]
    next_attempt_at: float | None

    @classmethod
    def of(cls, record: MessageRecord) -> RedeliveryOut:
        return cls(
            webhook_id=record.id,
            event_type=record.event_type,
            job_id=record.job_id,
            status=record.status,  # type: ignore[arg-type]
            next_attempt_at=record.next_attempt_at,
        )


class NotificationOut(BaseModel):
    """One notification a job's event made, as it stands."""

    webhook_id: str = Field(description="The message id (the webhook-id header; msg_...)")
    kind: Literal["webhook", "email"]
    event_type: str
    endpoint_id: str | None = Field(description="The webhook endpoint (wh_...); null for the job's own URL or email")
    url: str | None = Field(description="Where it is POSTed; null for an email")
    status: Literal["pending", "delivered", "gave_up"]
    failed_attempts: int = Field(description="Failed attempts in the current round of retries")
    occurred_at: float = Field(description="When the event happened")
    next_attempt_at: float | None = Field(
        description="When it is tried next; null once delivered or given up, or while it waits for the job's files"
    )
    last_attempt_at: float | None
    delivered_at: float | None
    last_status_code: int | None = Field(description="The last answer's HTTP status (250 for an accepted email)")
    last_error: str | None

    @classmethod
    def of(cls, record: MessageRecord) -> NotificationOut:
        return cls(
            webhook_id=record.id,
            kind=record.kind,  # type: ignore[arg-type]
            event_type=record.event_type,
            endpoint_id=record.webhook_id,
            url=record.url,
            status=record.status,  # type: ignore[arg-type]
            failed_attempts=record.tries,
            occurred_at=record.occurred_at,
            next_attempt_at=record.next_attempt_at,
            last_attempt_at=record.last_attempt_at,
            delivered_at=record.delivered_at,
            last_status_code=record.last_status_code,
            last_error=record.last_error,
        )


class WorkerJobOut(BaseModel):
    job_id: str
    handler: str
    items: int = Field(description="Items of the job it holds now (claimed, not yet recorded)")


class WorkerOut(BaseModel):
    id: str = Field(
        description="For admins the worker's own id (host-pid-random); for others a stable alias "
        "that does not reveal where it runs"
    )
    host: str | None = Field(description="The machine it runs on: admins only, null for others")
    pid: int | None = Field(description="Its process id: admins only, null for others")
    handlers: list[str]
    concurrency: int
    started_at: float
    last_seen_at: float
    in_flight: int
    status: str
    jobs: list[str] | None = Field(
        None,
        description="The only jobs it works on (a job's `wait` running it in-process); null: any job of its "
        "handlers. The ids are shown to admins; others get an empty list",
    )
    alive: bool = Field(
        True, description="Running and seen within BATCHYARD_WORKER_STALE_SECONDS (false: stopped, lost or silent)"
    )
    running: list[WorkerJobOut] = Field(
        default_factory=list,
        description="The jobs it holds items of now (its leases), with how many; others' jobs are left out for "
        "non-admins",
    )

    @classmethod
    def of(cls, worker: WorkerRecord) -> WorkerOut:
        return cls(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            handlers=worker.handlers,
            concurrency=worker.concurrency,
            started_at=worker.started_at,
            last_seen_at=worker.last_seen_at,
            in_flight=worker.in_flight,
            status=worker.status,
            jobs=worker.jobs,
        )


class HandlerOut(BaseModel):
    name: str
    description: str
    is_async: bool
    concurrency: int
    max_attempts: int | None
    timeout_seconds: float | None
    live_workers: int
