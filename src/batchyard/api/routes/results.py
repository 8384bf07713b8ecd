"""Routes: a job's result files and the job list as CSV, all streamed with bounded memory.

Which file is served (stored, or built from the items so far) is :class:`batchyard.services.results.ResultService`'s
business; a file built on the fly says so with ``X-Batchyard-Partial: true``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.filters import JobFilterDep, SortField
from batchyard.api.routes.items import errors
from batchyard.app import Batchyard
from batchyard.data.results import (
    ARTIFACTS_ZIP,
    ERRORS_JSONL,
    RESULTS_CSV,
    RESULTS_JSONL,
)
from batchyard.services.auth import Principal
from batchyard.services.results import MAX_JOBS_CSV_ROWS

router = APIRouter(prefix="/api/v1", tags=["results"])

PARTIAL_HEADER = "X-Batchyard-Partial"
MEDIA_TYPES = {
    RESULTS_JSONL: "application/x-ndjson",
    ERRORS_JSONL: "application/x-ndjson",
    RESULTS_CSV: "text/csv; charset=utf-8",
    ARTIFACTS_ZIP: "application/zip",
}


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
    result = app.results.open(job_id, name, principal)
    headers = {
        "Content-Disposition": f'attachment; filename="{result.job.id}-{name}"',
        PARTIAL_HEADER: "true" if result.partial else "false",
    }
    if result.size is not None:
        headers["Content-Length"] = str(result.size)
    return StreamingResponse(result.chunks, media_type=MEDIA_TYPES[name], headers=headers)


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
    summary="The job list as CSV, with the list's filters and sort",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": f"A header, then one row per job in the list's order (at most {MAX_JOBS_CSV_ROWS:,})",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **errors(400, 401, 403, 422),
    },
)
def jobs_csv(
    app: BatchyardDep,
    principal: PrincipalDep,
    where: JobFilterDep,
    sort: Annotated[SortField, Query(description="As in the job list")] = "-created_at",
) -> StreamingResponse:
    """The jobs the caller can see that match the job list's filters (an admin: every owner's), in the list's
    order, streamed. Times are ISO 8601 in UTC; cells that a spreadsheet would run as a formula start with '."""
    rows = app.results.jobs_csv(principal, where, sort=sort)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="jobs-{stamp}.csv"'},
    )
