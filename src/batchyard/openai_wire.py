"""The OpenAI-compatible JSON: File, Batch and their lists, exactly as the official ``openai`` SDK types them.

Separate from :mod:`batchyard.wire` (Batchyard's own resources): these shapes are OpenAI's, field for field, and
every key is sent, with explicit nulls, because OpenAI does and strict clients validate them
(``OpenAI(_strict_response_validation=True)``). Timestamps are integer Unix seconds.

A batch is a Batchyard job of the ``openai`` handler; :meth:`Batch.of` shows a job as OpenAI would. Its id is
the job's with ``batch_`` for ``job_`` (``job_0190c0ffee12ab34cd56`` is ``batch_0190c0ffee12ab34cd56``), so the same
batch can be followed in the native API, the CLI and the dashboard. This module imports no layer above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from batchyard.core.records import FileRecord, JobRecord

BATCH_PREFIX = "batch_"
JOB_PREFIX = "job_"
OPENAI_HANDLER = "openai"
# The job params that hold a batch's output and error file ids once they are written.
OUTPUT_FILE_PARAM = "output_file_id"
ERROR_FILE_PARAM = "error_file_id"

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]
TERMINAL_BATCH_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# The job events whose times fill the batch's *_at fields.
BATCH_EVENT_TYPES = ("validated", "finalizing", "cancelling", "cancelled")


def batch_id(job_id: str) -> str:
    return BATCH_PREFIX + job_id.removeprefix(JOB_PREFIX)


def job_id_of(batch: str) -> str | None:
    """The job id behind a batch id, or None for something that is not a batch id."""
    if not batch.startswith(BATCH_PREFIX) or len(batch) > 100:
        return None
    return JOB_PREFIX + batch.removeprefix(BATCH_PREFIX)


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def _after(created_at: float, expires_at: float | None) -> int | None:
    """An expiry as the creation time plus whole seconds: it was computed from the app's clock a moment before
    the database's clock stamped the creation, and ``created_at + 86400`` must read exactly so."""
    return None if expires_at is None else int(created_at) + round(expires_at - created_at)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error for a client mistake, server_error otherwise")
    param: str | None
    code: str | None


class OpenAIErrorResponse(BaseModel):
    """Every error under /v1/: OpenAI's shape, exactly these four keys."""

    error: OpenAIErrorDetail


# -- files ------------------------------------------------------------------------------------------------------


class OpenAIFile(BaseModel):
    """A file (OpenAI's ``FileObject``)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None

    @classmethod
    def of(cls, record: FileRecord) -> OpenAIFile:
        return cls(
            id=record.id,
            bytes=record.bytes,
            created_at=int(record.created_at),
            expires_at=_after(record.created_at, record.expires_at),
            filename=record.filename,
            purpose=record.purpose,
        )


class OpenAIFileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class OpenAIFileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


# -- batches ----------------------------------------------------------------------------------------------------


class BatchError(BaseModel):
    code: str | None
    message: str | None
    param: str | None
    line: int | None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class Batch(BaseModel):
    """A batch (OpenAI's ``Batch``), every key present."""

    id: str = Field(description="batch_ + the job id's hex part: the job is job_ + the same")
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None
    usage: BatchUsage

    @classmethod
    def of(cls, job: JobRecord, event_times: dict[str, float]) -> Batch:
        """The batch a job is, given when it first had each of :data:`BATCH_EVENT_TYPES`."""
        status = batch_status(job)
        params = job.params
        # Ids from an earlier run (the job was retried since) are not this run's files: only once written.
        files = params if job.files_written_at is not None else {}
        finished = _ts(job.finished_at) if status in TERMINAL_BATCH_STATUSES else None
        usage = job.usage
        return cls(
            id=batch_id(job.id),
            endpoint=str(params.get("endpoint") or "/v1/chat/completions"),
            model=params.get("model") if isinstance(params.get("model"), str) else None,
            errors=_errors(job) if status == "failed" else None,
            input_file_id=str(params.get("input_file_id") or ""),
            completion_window=str(params.get("completion_window") or "24h"),
            status=status,
            output_file_id=files.get(OUTPUT_FILE_PARAM),
            error_file_id=files.get(ERROR_FILE_PARAM),
            created_at=int(job.created_at),
            in_progress_at=_ts(event_times.get("validated") or job.started_at),
            expires_at=_after(job.created_at, job.expires_at),
            finalizing_at=_ts(event_times.get("finalizing")),
            completed_at=finished if status == "completed" else None,
            failed_at=finished if status == "failed" else None,
            expired_at=finished if status == "expired" else None,
            cancelling_at=_ts(event_times.get("cancelling") or event_times.get("cancelled")),
            cancelled_at=finished if status == "cancelled" else None,
            request_counts=BatchRequestCounts(
                total=job.total, completed=job.succeeded, failed=job.failed + job.cancelled
            ),
            metadata={str(k): str(v) for k, v in job.metadata.items()} if job.metadata else None,
            usage=BatchUsage(
                input_tokens=int(usage.get("input_tokens", 0)),
                input_tokens_details=InputTokensDetails(cached_tokens=int(usage.get("cached_tokens", 0))),
                output_tokens=int(usage.get("output_tokens", 0)),
                output_tokens_details=OutputTokensDetails(reasoning_tokens=int(usage.get("reasoning_tokens", 0))),
                total_tokens=int(usage.get("total_tokens", 0)),
            ),
        )


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool


def batch_status(job: JobRecord) -> BatchStatus:
    """A job's status as OpenAI names it. A queued job with no items is being validated. A job that ended with
    requests (cancelled, expired, failed) shows its final status only once its output and error files exist,
    so a client that stops polling at a final status always finds its files; until then it is ``cancelling``
    or ``finalizing``."""
    status = job.status
    if status in ("queued", "paused") and job.total == 0:
        return "validating"
    if status == "queued":
        return "in_progress"
    if status in ("running", "paused"):
        return "in_progress"
    if status in ("finalizing", "cancelling", "completed"):
        return status  # type: ignore[return-value]  # the same word in both vocabularies
    files_pending = job.total > 0 and job.files_written_at is None
    if status == "cancelled":
        return "cancelling" if files_pending else "cancelled"
    if status in ("expired", "failed"):
        return "finalizing" if files_pending else status  # type: ignore[return-value]
    return "in_progress"


def _errors(job: JobRecord) -> BatchErrors:
    error: dict[str, Any] = job.error or {}
    listed = error.get("errors")
    if isinstance(listed, list):
        return BatchErrors(data=[BatchError.model_validate(entry) for entry in listed])
    return BatchErrors(
        data=[
            BatchError(
                code=str(error.get("code") or "failed"),
                message=str(error.get("message") or "the batch failed"),
                param=None,
                line=None,
            )
        ]
    )
