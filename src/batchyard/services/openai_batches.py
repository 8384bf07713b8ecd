"""The OpenAI-compatible Batch API's rules: a batch is a job of the ``openai`` handler.

- **Create** checks the request (400 for a missing or bad field, a file that is not the caller's ``batch`` upload)
  and creates the job at once, empty: the batch is ``validating``.
- **Validation** (:meth:`OpenAIBatchService.validate_pending`, run right after create and by every process's
  maintenance, so a crash mid-way only delays it) reads the input file with
  :class:`~batchyard.data.openai_input.BatchInputReader`. A clean file becomes the job's items (key = custom_id,
  payload = the request line) in one transaction and the batch is ``in_progress``; a file with problems fails the
  batch with every problem in ``errors.data`` and nothing runs, as OpenAI does.
- **Results**: once the job has ended, maintenance writes the output and error files
  (:meth:`OpenAIBatchService.write_batch_files`) as files of the batch's owner with purpose ``batch_output``,
  before the job shows ``completed`` (or ``cancelled``, ``expired``).
- The completion window ("24h", or ``BATCHYARD_OPENAI_WINDOW_SECONDS``) is the job's expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from batchyard.core.records import JobQuery, JobRecord, JobSpec
from batchyard.data.blobs import LocalStorage
from batchyard.data.openai_input import BATCH_ENDPOINTS, BatchInputReader, BatchInputRejected, LineProblem
from batchyard.data.openai_output import BATCH_CANCELLED, BATCH_EXPIRED, write_batch_files
from batchyard.errors import IllegalTransition, InvalidRequest, NotFound
from batchyard.openai_wire import (
    BATCH_EVENT_TYPES,
    ERROR_FILE_PARAM,
    OPENAI_HANDLER,
    OUTPUT_FILE_PARAM,
    Batch,
    BatchList,
    batch_id,
    job_id_of,
)
from batchyard.registry import HandlerRegistry
from batchyard.services.auth import Principal
from batchyard.services.files import FileService, new_file_id, upload_name

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.settings import Settings
    from batchyard.store import Store

COMPLETION_WINDOWS = ("24h",)
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MIN_OUTPUT_EXPIRY_SECONDS = 3600
MAX_OUTPUT_EXPIRY_SECONDS = 30 * 24 * 3600
DEFAULT_OUTPUT_EXPIRY_SECONDS = 30 * 24 * 3600  # OpenAI deletes a batch's output 30 days after it is written
DEFAULT_BATCH_PAGE = 20
MAX_BATCH_PAGE = 100
MAX_REPORTED_PROBLEMS = 1000
VALIDATION_LEASE_SECONDS = 120.0


def invalid(message: str, param: str | None, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def check_metadata(metadata: Any) -> dict[str, str] | None:
    """OpenAI's metadata rules: at most 16 pairs, string keys of up to 64 characters, string values of up to 512."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid("metadata must be an object of string keys and string values.", "metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise invalid(f"metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed.", "metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise invalid(
                f"metadata key {key[:80]!r} is {len(key)} characters long; keys have at most {MAX_METADATA_KEY_CHARS}.",
                "metadata",
            )
        if not isinstance(value, str):
            raise invalid(f"metadata[{key!r}] must be a string.", f"metadata.{key}")
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise invalid(
                f"metadata[{key!r}] is {len(value)} characters long; values have at most {MAX_METADATA_VALUE_CHARS}.",
                f"metadata.{key}",
            )
    return dict(metadata)


def check_output_expiry(expires_after: Any) -> int | None:
    """Seconds after its creation that a batch's output file expires (``{anchor: "created_at", seconds}``)."""
    if expires_after is None:
        return None
    if not isinstance(expires_after, dict):
        raise invalid("output_expires_after must be an object {anchor, seconds}.", "output_expires_after")
    if expires_after.get("anchor") != "created_at":
        raise invalid("output_expires_after.anchor must be 'created_at'.", "output_expires_after.anchor")
    seconds = expires_after.get("seconds")
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not MIN_OUTPUT_EXPIRY_SECONDS <= seconds <= MAX_OUTPUT_EXPIRY_SECONDS
    ):
        raise invalid(
            f"output_expires_after.seconds must be an integer between {MIN_OUTPUT_EXPIRY_SECONDS} and "
            f"{MAX_OUTPUT_EXPIRY_SECONDS}.",
            "output_expires_after.seconds",
        )
    return seconds


def _required(value: Any, name: str) -> Any:
    if value is None:
        raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    return value


class OpenAIBatchService:
    """Batches for ``principal``: another owner's batch is missing (404), exactly like a wrong id."""

    def __init__(
        self, store: Store, storage: LocalStorage, settings: Settings, registry: HandlerRegistry | None = None
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.registry = registry or HandlerRegistry()

    @property
    def files(self) -> FileService:
        return FileService(self.store, self.storage, self.settings)

    # -- create -------------------------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        *,
        input_file_id: Any,
        endpoint: Any,
        completion_window: Any,
        metadata: Any = None,
        output_expires_after: Any = None,
    ) -> Batch:
        """Create a batch (``validating``); its input file is checked right after (see the module docstring)."""
        principal.require_write()
        _required(input_file_id, "input_file_id")
        _required(endpoint, "endpoint")
        _required(completion_window, "completion_window")
        if endpoint not in BATCH_ENDPOINTS:
            raise invalid(
                f"Invalid value for 'endpoint': {str(endpoint)[:100]!r}; supported: {', '.join(BATCH_ENDPOINTS)}.",
                "endpoint",
            )
        if completion_window not in COMPLETION_WINDOWS:
            raise invalid(
                f"Invalid value for 'completion_window': {str(completion_window)[:40]!r}; only '24h' is supported.",
                "completion_window",
            )
        clean_metadata = check_metadata(metadata)
        output_expiry = check_output_expiry(output_expires_after)
        if not isinstance(input_file_id, str):
            raise invalid("input_file_id must be a string.", "input_file_id")
        try:
            record = self.files.get(input_file_id, principal)
        except NotFound:
            raise NotFound(f"No file found with id {input_file_id[:100]!r}.", param="input_file_id") from None
        if record.purpose != "batch":
            raise invalid(
                f"File {record.id} has purpose {record.purpose!r}; a batch's input file must be uploaded with "
                "purpose 'batch'.",
                "input_file_id",
            )
        params: dict[str, Any] = {
            "endpoint": endpoint,
            "input_file_id": record.id,
            "completion_window": completion_window,
        }
        if output_expiry is not None:
            params["output_expires_after_seconds"] = output_expiry
        description = (clean_metadata or {}).get("description") or f"OpenAI batch, {endpoint}"
        spec = JobSpec(
            handler=OPENAI_HANDLER,
            owner=principal.owner,
            params=params,
            description=description,
            metadata=clean_metadata,
            source=record.filename,
            expires_at=time.time() + self.settings.openai_window_seconds,
            max_attempts=self._max_attempts(),
            backoff_base_seconds=self.settings.backoff_base_seconds,
            backoff_max_seconds=self.settings.backoff_max_seconds,
            timeout_seconds=self._timeout(),
        )
        job = self.store.jobs.create_job(spec, _NoItems(), actor=principal.owner)
        return self._batch(job)

    def _max_attempts(self) -> int:
        if OPENAI_HANDLER in self.registry:
            return self.registry.get(OPENAI_HANDLER).max_attempts or self.settings.max_attempts
        return self.settings.max_attempts

    def _timeout(self) -> float | None:
        if OPENAI_HANDLER in self.registry:
            return self.registry.get(OPENAI_HANDLER).timeout_seconds
        return None

    # -- reading ------------------------------------------------------------------------------------------

    def job_record(self, batch: str, principal: Principal, *, write: bool = False) -> JobRecord:
        if write:
            principal.require_write()
        missing = NotFound(f"No batch found with id {batch[:100]!r}.", param="batch_id")
        job_id = job_id_of(batch)
        if job_id is None or "\x00" in job_id:
            raise missing
        try:
            job = self.store.jobs.get_job(job_id)
        except NotFound:
            raise missing from None
        if job.handler != OPENAI_HANDLER or not principal.can_see(job.owner):
            raise missing
        return job

    def get(self, batch: str, principal: Principal) -> Batch:
        return self._batch(self.job_record(batch, principal))

    def list_batches(
        self, principal: Principal, *, after: str | None = None, limit: int = DEFAULT_BATCH_PAGE
    ) -> BatchList:
        """The caller's batches, newest first; ``after`` is the last batch id of the previous page."""
        if not 1 <= limit <= MAX_BATCH_PAGE:
            raise invalid(f"limit must be between 1 and {MAX_BATCH_PAGE}.", "limit")
        position = None
        if after is not None:
            try:
                last = self.job_record(after, principal)
            except NotFound:
                raise invalid(f"after: no batch {after[:100]!r} to continue from.", "after") from None
            position = (last.created_at, last.id)
        records = self.store.jobs.list_jobs(
            JobQuery(owner=principal.owner_scope(), handler=OPENAI_HANDLER, limit=limit + 1, after=position)
        )
        page = self._batches(records[:limit])
        return BatchList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(records) > limit,
        )

    def _batch(self, job: JobRecord) -> Batch:
        return self._batches([job])[0]

    def batch_of(self, job: JobRecord) -> Batch:
        """The batch a job of the ``openai`` handler is, as ``GET /v1/batches/{id}`` shows it."""
        return self._batch(job)

    def _batches(self, jobs: Sequence[JobRecord]) -> list[Batch]:
        times = self.store.jobs.event_times([j.id for j in jobs], BATCH_EVENT_TYPES)
        return [Batch.of(job, times.get(job.id, {})) for job in jobs]

    # -- cancel -------------------------------------------------------------------------------------------

    def cancel(self, batch: str, principal: Principal) -> Batch:
        """``cancelling`` now (requests in flight finish), ``cancelled`` once its files are written. Cancelling a
        batch that is already cancelling or cancelled answers it as it is; a finished batch is a 409."""
        job = self.job_record(batch, principal, write=True)
        if job.status in ("cancelling", "cancelled"):
            return self._batch(job)
        try:
            job = self.store.jobs.cancel_job(job.id, actor=principal.owner, reason="cancelled through /v1/batches")
        except IllegalTransition:
            current = self._batch(self.store.jobs.get_job(job.id))
            raise IllegalTransition(
                f"Cannot cancel a batch that is {current.status}.", current=current.status
            ) from None
        return self._batch(job)

    # -- validation ---------------------------------------------------------------------------------------

    def validate_pending(self, limit: int = 10) -> int:
        """Check the input of batches still ``validating`` (each claimed, so processes never do one twice);
        returns how many were decided."""
        done = 0
        for job_id in self.store.jobs.jobs_awaiting_items(OPENAI_HANDLER, limit):
            if self.validate(job_id):
                done += 1
        return done

    def validate(self, job_id: str) -> bool:
        """Fill one validating batch from its input file, or fail it with the file's problems. False if another
        process holds it, or the file's bytes are not in this process's storage (another machine's upload)."""
        job = self.store.jobs.get_job(job_id)
        params = dict(job.params)
        file_id = str(params.get("input_file_id") or "")
        try:
            record = self.store.uploads.get_file(file_id)
        except NotFound:
            record = None
        if record is not None and not self.storage.exists(upload_name(record.id)):
            # Uploaded through another machine's API with its own data directory: that one validates it.
            return False
        if not self.store.jobs.claim_filling(job_id, OPENAI_HANDLER, VALIDATION_LEASE_SECONDS):
            return False
        if record is None:
            deleted = LineProblem("invalid_request", f"The input file {file_id} was deleted.", "input_file_id")
            return self._fail(job, [deleted], 1)
        if record.bytes > self.settings.openai_max_batch_bytes:
            message = (
                f"The batch input file is larger than the {self.settings.openai_max_batch_bytes} maximum "
                f"({record.bytes} bytes); split it into several batches."
            )
            return self._fail(job, [LineProblem("file_too_large", message, "input_file_id")], 1)
        try:
            stream = self.storage.open_read(upload_name(record.id))
        except FileNotFoundError:  # deleted since the check above
            deleted = LineProblem("invalid_request", f"The input file {file_id} was deleted.", "input_file_id")
            return self._fail(job, [deleted], 1)
        reader = BatchInputReader(
            stream,
            endpoint=str(params.get("endpoint")),
            max_requests=self.settings.openai_max_batch_requests,
            max_line_bytes=self.settings.max_line_bytes,
            max_problems=MAX_REPORTED_PROBLEMS,
        )
        try:
            with stream:
                filled = self.store.jobs.fill_job(job_id, _ModelParams(reader, params), params=params)
        except BatchInputRejected as rejected:
            return self._fail(job, rejected.problems, rejected.total)
        return filled is not None

    def _fail(self, job: JobRecord, problems: list[LineProblem], total: int) -> bool:
        shown = problems[0].message if problems else "invalid input"
        error = {
            "code": "invalid_input",
            "message": f"the batch input file has {total} problem(s); the first: {shown}",
            "total": total,
            "errors": [p.to_dict() for p in problems],
        }
        return self.store.jobs.fail_unfilled(job.id, error, actor="validation")

    # -- output files -------------------------------------------------------------------------------------

    def write_batch_files(self, job_id: str, keepalive: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """Write a finished batch's output and error files as files of its owner (``batch_output``) and record
        their ids in the job's params (the batch shows them once the job's result files are recorded); returns
        the ids, or None for a job that is no OpenAI batch."""
        job = self.store.jobs.get_job(job_id)
        if job.handler != OPENAI_HANDLER or not job.total:
            return None
        name = batch_id(job.id)
        output_id, error_id = new_file_id(), new_file_id()
        output, errors = write_batch_files(
            self.store,
            self.storage,
            job.id,
            output_name=upload_name(output_id),
            error_name=upload_name(error_id),
            unexecuted_code=BATCH_EXPIRED if job.status == "expired" else BATCH_CANCELLED,
            keepalive=keepalive,
        )
        seconds = job.params.get("output_expires_after_seconds") or DEFAULT_OUTPUT_EXPIRY_SECONDS
        entry: dict[str, Any] = {OUTPUT_FILE_PARAM: None, ERROR_FILE_PARAM: None}
        for key, file_id, written, suffix in (
            (OUTPUT_FILE_PARAM, output_id, output, "output"),
            (ERROR_FILE_PARAM, error_id, errors, "error"),
        ):
            if written is None:
                continue
            record = self.store.uploads.add_file(
                file_id,
                job.owner,
                f"{name}_{suffix}.jsonl",
                "batch_output",
                written.bytes,
                written.sha256,
                expires_at=time.time() + float(seconds),
            )
            entry[key] = record.id
        self.store.jobs.merge_params(job.id, entry)
        return entry

    def delete_expired_files(self, limit: int = 100) -> int:
        """Delete files past their ``expires_at`` (batch inputs after 30 days, outputs as their batch said)."""
        n = 0
        for record in self.store.uploads.expired_files(limit):
            if self.store.uploads.delete_file(record.id):
                self.storage.delete(upload_name(record.id))
                n += 1
        return n


class _NoItems:
    """The items of a batch at creation: none yet (validation adds them)."""

    def chunks(self, size: int) -> Any:
        return iter(())


class _ModelParams:
    """Passes a reader's chunks through and, once all are read, records the model the requests name."""

    def __init__(self, reader: BatchInputReader, params: dict[str, Any]) -> None:
        self.reader = reader
        self.params = params

    def chunks(self, size: int) -> Any:
        yield from self.reader.chunks(size)
        if self.reader.model is not None:
            self.params["model"] = self.reader.model
