"""Plain records passed between the store, the worker, the services, the API and the CLI (no SQL here;
``from_row`` only reads a row mapping)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchyard.core.lifecycle import OutcomeKind
from batchyard.core.rate import fraction

if TYPE_CHECKING:
    from sqlalchemy.engine import Row


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a new job is created with."""

    handler: str
    owner: str = "local"
    project: str | None = None
    priority: int = 0
    params: dict[str, Any] | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] | None = None
    source: str | None = None
    scheduled_at: float | None = None
    expires_at: float | None = None
    max_attempts: int = 3
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    timeout_seconds: float | None = None
    concurrency: int | None = None
    max_failures: int | None = None
    max_failure_rate: float | None = None
    webhook_url: str | None = None  # the job's own webhook (checked by the service)
    notify_emails: tuple[str, ...] = ()  # emailed when the job ends


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a list, an export, a bulk action or the history covers. Every field narrows; None or empty
    means no condition. ``statuses`` are plain status names (groups such as ``active`` already expanded, see
    :mod:`batchyard.core.jobfilter`); ``search`` matches an id prefix, or text in the description or the tags."""

    owner: str | None = None
    statuses: tuple[str, ...] | list[str] = ()
    handler: str | None = None
    project: str | None = None
    tag: str | None = None
    created_after: float | None = None  # created_at >= this (epoch seconds)
    created_before: float | None = None  # created_at < this
    search: str | None = None


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters (those of :class:`JobFilter`), order and position of a page of jobs."""

    owner: str | None = None
    statuses: tuple[str, ...] | list[str] = ()
    handler: str | None = None
    project: str | None = None
    tag: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    search: str | None = None
    sort: str = "-created_at"  # created_at | priority | updated_at | total, "-" for descending
    limit: int = 50
    after: tuple[Any, str] | None = None  # (sort value, job id) of the last row of the previous page

    @classmethod
    def of(
        cls, where: JobFilter, *, sort: str = "-created_at", limit: int = 50, after: tuple[Any, str] | None = None
    ) -> JobQuery:
        return cls(
            owner=where.owner,
            statuses=tuple(where.statuses),
            handler=where.handler,
            project=where.project,
            tag=where.tag,
            created_after=where.created_after,
            created_before=where.created_before,
            search=where.search,
            sort=sort,
            limit=limit,
            after=after,
        )

    @property
    def filter(self) -> JobFilter:
        return JobFilter(
            owner=self.owner,
            statuses=tuple(self.statuses),
            handler=self.handler,
            project=self.project,
            tag=self.tag,
            created_after=self.created_after,
            created_before=self.created_before,
            search=self.search,
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    handler: str
    owner: str
    project: str | None
    status: str
    priority: int
    params: dict[str, Any]
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    source: str | None
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    cost: float
    usage: dict[str, float]
    busy_seconds: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    last_activity_at: float | None
    scheduled_at: float | None
    expires_at: float | None
    error: dict[str, Any] | None
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float | None
    concurrency: int | None
    max_failures: int | None
    max_failure_rate: float | None
    files_written_at: float | None
    result_files: dict[str, Any]
    skipped: int = 0  # items the app skipped (SkipItem)
    status_reason: str | None = None  # core/lifecycle.StatusReason, or None
    status_message: str | None = None
    webhook_url: str | None = None
    notify_emails: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.skipped

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    @classmethod
    def from_row(cls, row: Row[*tuple[Any, ...]]) -> JobRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            handler=m["handler"],
            owner=m["owner"],
            project=m["project"],
            status=m["status"],
            priority=m["priority"],
            params=_json(m["params"], {}),
            description=m["description"],
            tags=_json(m["tags"], []),
            metadata=_json(m["meta"], {}),
            source=m["source"],
            total=m["total"],
            queued=m["queued"],
            running=m["running"],
            succeeded=m["succeeded"],
            failed=m["failed"],
            cancelled=m["cancelled"],
            skipped=m["skipped"],
            cost=m["cost"],
            usage=_json(m["usage"], {}),
            busy_seconds=m["busy_seconds"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            last_activity_at=m["last_activity_at"],
            scheduled_at=m["scheduled_at"],
            expires_at=m["expires_at"],
            error=_json(m["error"], None),
            max_attempts=m["max_attempts"],
            backoff_base_seconds=m["backoff_base_seconds"],
            backoff_max_seconds=m["backoff_max_seconds"],
            timeout_seconds=m["timeout_seconds"],
            concurrency=m["concurrency"],
            max_failures=m["max_failures"],
            max_failure_rate=m["max_failure_rate"],
            files_written_at=m["files_written_at"],
            result_files=_json(m["result_files"], {}),
            status_reason=m["status_reason"],
            status_message=m["status_message"],
            webhook_url=m["webhook_url"],
            notify_emails=_json(m["notify_emails"], []),
        )


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to know about the job of a claimed chunk."""

    id: str
    handler: str
    params: dict[str, Any]
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float | None


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    seq: int
    key: str
    payload: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    job: ClaimedJob
    lease_token: str
    items: list[ClaimedItem]
    suspect: bool = False  # items handed back by a worker's crash, claimed apart to find a poisonous one


@dataclass(slots=True)
class Outcome:
    """How one attempt at one item ended, as the worker reports it."""

    job_id: str
    seq: int
    lease_token: str
    kind: OutcomeKind
    result: str | None = None  # JSON text
    error: str | None = None  # JSON text
    finished_at: float = 0.0
    retry_delay: float = 0.0
    cost: float = 0.0
    usage: dict[str, float] | None = None
    duration: float = 0.0  # seconds the handler ran


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """The latest ``ctx.progress`` of one running item, as its worker writes it (fenced by the lease token)."""

    job_id: str
    seq: int
    lease_token: str
    done: float
    total: float | None
    message: str | None
    at: float  # epoch seconds of the report

    @property
    def fraction(self) -> float | None:
        """done / total, within [0, 1]; None without a total (:func:`batchyard.core.rate.fraction`)."""
        return fraction(self.done, self.total)


@dataclass(frozen=True, slots=True)
class ItemProgress:
    """A running item's latest report as readers see it: the job's "current step"."""

    key: str
    done: float
    total: float | None
    message: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class RunningProgress:
    """What a job's running items reported: the sum of their fractions done (items' worth of work, e.g. 0.5 for
    one item half done) and the latest reports, most recent first (a few)."""

    partial: float = 0.0
    current: tuple[ItemProgress, ...] = ()


NO_RUNNING_PROGRESS = RunningProgress()
MAX_CURRENT_ITEMS = 5  # latest reports shown per job (RunningProgress.current)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    job_id: str
    seq: int
    key: str
    status: str
    attempts: int
    payload: Any
    result: Any
    error: dict[str, Any] | None
    started_at: float | None
    finished_at: float | None
    usage: dict[str, float] | None
    rescues: int = 0

    @classmethod
    def from_row(cls, row: Row[*tuple[Any, ...]], *, with_payload: bool = True) -> ItemRecord:
        m = row._mapping
        return cls(
            job_id=m["job_id"],
            seq=m["seq"],
            key=m["key"],
            status=m["status"],
            attempts=m["attempts"],
            payload=_json(m["payload"], None) if with_payload else None,
            result=_json(m["result"], None),
            error=_json(m["error"], None),
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            usage=_json(m["usage"], None),
            rescues=m.get("rescues", 0),
        )


@dataclass(frozen=True, slots=True)
class ErrorGroupRecord:
    """A job's failed items that share an error signature (see :mod:`batchyard.core.errorsig`)."""

    signature: str
    count: int
    first_seen: float | None  # the earliest and latest finished_at of its items
    last_seen: float | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    job_id: str
    at: float
    type: str
    actor: str | None
    message: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    host: str
    pid: int
    handlers: list[str]
    concurrency: int
    started_at: float
    last_seen_at: float
    in_flight: int
    status: str
    jobs: list[str] | None = None  # only these jobs (a ``Job.wait`` worker); None: any job of its handlers

    def serves(self, handler: str, job_id: str | None = None) -> bool:
        """Whether it works on ``handler``'s jobs: any of them (``job_id`` None), or that one job."""
        if handler not in self.handlers:
            return False
        return self.jobs is None or (job_id is not None and job_id in self.jobs)


@dataclass
class CompletionReport:
    accepted: int = 0
    settled: list[str] = field(default_factory=list)  # jobs that moved to finalizing or cancelled


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    prefix: str
    owner: str
    role: str
    name: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    owner: str
    role: str
    csrf_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file's metadata; the bytes live in storage under ``uploads/{id}``."""

    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    created_at: float
    expires_at: float | None


ITEM_COUNTERS = ("total", "queued", "running", "succeeded", "failed", "cancelled", "skipped")


@dataclass(frozen=True, slots=True)
class StatsFilter:
    """Which jobs the stats cover. ``owner=None`` means every owner; ``created_since`` is epoch seconds."""

    owner: str | None = None
    project: str | None = None
    handler: str | None = None
    created_since: float | None = None


@dataclass(slots=True)
class StatsBucket:
    """Sums over the jobs of one (project, handler) pair."""

    project: str | None
    handler: str
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ITEM_COUNTERS, 0))
    busy_seconds: float = 0.0  # summed handler time of finished (succeeded or failed) items
    recent_busy_seconds: float = 0.0  # the same, over jobs active within the recent window
    recent_finished: int = 0  # succeeded + failed items of those jobs
    cost: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    window_finished: int = 0  # items that succeeded or failed within the throughput window
    window_first_start: float | None = None  # earliest start among the jobs active within that window


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    now: float  # the database clock when the numbers were read
    recent_seconds: float
    throughput_seconds: float
    buckets: list[StatsBucket]


def _json(value: str | None, default: Any) -> Any:
    return default if value is None else decode_json(value)


# A JSON text can hold a lone surrogate as an escape ("\\ud800"): valid JSON, but a str UTF-8 cannot encode, which
# would make every response, file or terminal showing it fail. Such escapes are rare; only texts with one are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(text: str) -> Any:
    """A stored JSON text as Python values; lone surrogates in it become U+FFFD, so whatever was stored shows."""
    value = json.loads(text)
    return _replace_lone_surrogates(value) if _SURROGATE_ESCAPE.search(text) else value


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value


# -- notifications ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A webhook endpoint (its secret is never part of it: see :class:`NewWebhook`)."""

    id: str
    owner: str
    url: str
    events: list[str]  # empty: every event
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A notification claimed for one attempt: where it goes, signed with what, and the lease it is held by."""

    id: str  # the webhook-id header
    kind: str  # webhook | email
    owner: str
    job_id: str
    event_type: str
    webhook_id: str | None
    url: str | None
    secret: str | None  # the endpoint's, or the owner's default one (None for an email)
    occurred_at: float
    payload: str | None  # the body of earlier attempts, to send again as it was
    tries: int  # failed attempts so far in this round
    lease_token: str


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One delivery attempt of a message (the delivery log)."""

    id: int
    message_id: str
    webhook_id: str | None
    job_id: str
    event_type: str
    at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: str  # delivered | failed (will retry) | gave_up
    message_status: str  # the message's status now: pending | delivered | gave_up


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message as it stands (a job's notifications, redelivery, the drain)."""

    id: str
    kind: str
    owner: str
    job_id: str
    webhook_id: str | None
    event_type: str
    status: str
    tries: int
    next_attempt_at: float | None
    url: str | None = None
    occurred_at: float = 0.0
    last_attempt_at: float | None = None
    delivered_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None
