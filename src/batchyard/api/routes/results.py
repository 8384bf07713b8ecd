"""Routes: a job's result files and the job list as CSV, all streamed with bounded memory.

Once a job's result files are written they are served from storage. Before that (the job still runs),
``results.jsonl``, ``errors.jsonl`` and ``results.csv`` are built on the fly from the items finished so far, and
say so with ``X-Batchyard-Partial: true``; ``artifacts.zip`` only exists once the job has finished.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.routes.items import errors, visible_job
from batchyard.app import Batchyard
from batchyard.core.lifecycle import TERMINAL_ITEM_STATUSES, JobStatus
from batchyard.core.records import JobQuery, JobRecord
from batchyard.data.blobs import job_prefix
from batchyard.data.results import (
    ARTIFACTS_ZIP,
    ERRORS_JSONL,
    RESULTS_CSV,
    RESULTS_JSONL,
    CsvWriter,
    csv_cell,
    elsewhere_message,
    iter_partial_lines,
    no_artifacts_message,
)
from batchyard.errors import NotFound, NotReady
from batchyard.services.auth import Principal
from batchyard.store import Store

router = APIRouter(prefix="/api/v1", tags=["results"])

CHUNK_BYTES = 64 * 1024  # built-on-the-fly downloads are sent in pieces about this big
FILE_CHUNK_BYTES = 1 << 20
MAX_JOBS_CSV_ROWS = 100_000
JOBS_CSV_PAGE = 1000
JOBS_CSV_COLUMNS = [
    "id",
    "handler",
    "status",
    "owner",
    "project",
    "total",
    "succeeded",
    "failed",
    "cancelled",
    "percent",
    "created_at",
    "finished_at",
    "cost",
]
PARTIAL_HEADER = "X-Batchyard-Partial"
MEDIA_TYPES = {
    RESULTS_JSONL: "application/x-ndjson",
    ERRORS_JSONL: "application/x-ndjson",
    RESULTS_CSV: "text/csv; charset=utf-8",
    ARTIFACTS_ZIP: "application/zip",
}
_FINISHED_ITEM_STATUSES = frozenset(s.value for s in TERMINAL_ITEM_STATUSES)


def _download_doc(name: str, what: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    media = MEDIA_TYPES[name].split(";")[0]
    return {
        200: {
            "description": what,
            "content": {media: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                PARTIAL_HEADER: {
                    "description": "true when built from the items finished so far",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                }
            },
        },
        **errors(*statuses),
    }


def download_result_file(app: Batchyard, principal: Principal, job_id: str, name: str) -> StreamingResponse:
    """Stream one result file of a job: the stored file once written, else built from the items so far."""
    job = visible_job(app, job_id, principal)
    headers = {"Content-Disposition": f'attachment; filename="{job.id}-{name}"'}
    if name in job.result_files:
        stored = f"{job_prefix(job.id)}/{name}"
        try:
            size = app.storage.size(stored)
            stream = app.storage.open_read(stored)
        except FileNotFoundError:  # a retry removed the files after we read the job: build them instead
            stream = None
        if stream is not None:
            headers.update({PARTIAL_HEADER: "false", "Content-Length": str(size)})
            return StreamingResponse(_file_chunks(stream), media_type=MEDIA_TYPES[name], headers=headers)
        if name == ARTIFACTS_ZIP and name in visible_job(app, job_id, principal).result_files:
            # Not a retry: another machine wrote it into its own data dir (the items hold no artifacts to rebuild)
            raise NotFound(elsewhere_message(job.id, name, job.result_files[name]), param="job_id")
    if name == ARTIFACTS_ZIP:
        if job.files_written_at is not None:
            raise NotFound(no_artifacts_message(job.id, job.result_files), param="job_id")
        raise NotReady(
            f"artifacts.zip is built when job {job.id} finishes; it is {job.status} "
            f"({job.percent:.0f}% done). results.jsonl and results.csv have the results so far",
            param="job_id",
        )
    body = partial_csv(app.store, job.id) if name == RESULTS_CSV else iter_partial_lines(app.store, job.id, name)
    headers[PARTIAL_HEADER] = "true"
    return StreamingResponse(_encoded(body), media_type=MEDIA_TYPES[name], headers=headers)


def partial_csv(store: Store, job_id: str) -> Iterator[str]:
    """results.csv as it would be written now, for the items finished so far (same columns as the final one)."""
    out = io.StringIO()
    writer = CsvWriter(out)
    for row in store.items.iter_item_rows(job_id):
        if row[2] in _FINISHED_ITEM_STATUSES:
            writer.add(row)
            if out.tell() >= CHUNK_BYTES:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    writer.close()
    yield out.getvalue()


def _encoded(pieces: Iterable[str]) -> Iterator[bytes]:
    """Join small text pieces into chunks of about CHUNK_BYTES, UTF-8 encoded."""
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _file_chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(FILE_CHUNK_BYTES):
            yield chunk


@router.get(
    "/jobs/{job_id}/results.jsonl",
    summary="Succeeded items with their results (JSON lines)",
    response_class=StreamingResponse,
    responses=_download_doc(RESULTS_JSONL, "One line per succeeded item, in input order", 401, 404),
)
def results_jsonl(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    """Available while the job runs: then it holds the items succeeded so far."""
    return download_result_file(app, principal, job_id, RESULTS_JSONL)


@router.get(
    "/jobs/{job_id}/errors.jsonl",
    summary="Failed items with their last error (JSON lines)",
    response_class=StreamingResponse,
    responses=_download_doc(ERRORS_JSONL, "One line per failed item, in input order", 401, 404),
)
def errors_jsonl(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    """Available while the job runs: then it holds the items failed so far."""
    return download_result_file(app, principal, job_id, ERRORS_JSONL)


@router.get(
    "/jobs/{job_id}/results.csv",
    summary="Every finished item as a CSV row",
    response_class=StreamingResponse,
    responses=_download_doc(RESULTS_CSV, "A header, then one row per item, in input order", 401, 404),
)
def results_csv(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    """Dict results spread into ``result.<name>`` columns. While the job runs: the items finished so far."""
    return download_result_file(app, principal, job_id, RESULTS_CSV)


@router.get(
    "/jobs/{job_id}/artifacts.zip",
    summary="The files the handler saved, zipped",
    response_class=StreamingResponse,
    responses=_download_doc(ARTIFACTS_ZIP, "A ZIP of every artifact", 401, 404, 409),
)
def artifacts_zip(job_id: str, app: BatchyardDep, principal: PrincipalDep) -> StreamingResponse:
    """Written when the job finishes: 409 before that, 404 when the handler saved no artifacts."""
    return download_result_file(app, principal, job_id, ARTIFACTS_ZIP)


@router.get(
    "/jobs.csv",
    summary="The job list as CSV",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": f"A header, then one row per job, newest first (at most {MAX_JOBS_CSV_ROWS:,})",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **errors(401, 422),
    },
)
def jobs_csv(
    app: BatchyardDep,
    principal: PrincipalDep,
    status: Annotated[list[JobStatus] | None, Query(description="Only jobs in these statuses (repeatable)")] = None,
    handler: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    project: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
) -> StreamingResponse:
    """The jobs the caller can see (an admin: every owner's). Times are ISO 8601 in UTC."""
    owner = None if principal.is_admin else principal.owner
    statuses = sorted({s.value for s in status or ()})
    rows = _job_rows(app.store, owner=owner, statuses=statuses, handler=handler, project=project)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _encoded(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="jobs-{stamp}.csv"'},
    )


def _job_rows(
    store: Store, *, owner: str | None, statuses: Sequence[str], handler: str | None, project: str | None
) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in JOBS_CSV_COLUMNS])
    written = 0
    after: tuple[float, str] | None = None
    while written < MAX_JOBS_CSV_ROWS:
        limit = min(JOBS_CSV_PAGE, MAX_JOBS_CSV_ROWS - written)
        page = store.jobs.list_jobs(
            JobQuery(owner=owner, statuses=tuple(statuses), handler=handler, project=project, after=after, limit=limit)
        )
        writer.writerows(_job_cells(job) for job in page)
        written += len(page)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(page) < limit:
            return
        after = (page[-1].created_at, page[-1].id)


def _job_cells(job: JobRecord) -> list[Any]:
    cells = [
        job.id,
        job.handler,
        job.status,
        job.owner,
        job.project or "",
        job.total,
        job.succeeded,
        job.failed,
        job.cancelled,
        f"{job.percent:.2f}",
        _iso(job.created_at),
        _iso(job.finished_at),
        f"{job.cost:.6f}",
    ]
    return [csv_cell(cell) for cell in cells]


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
