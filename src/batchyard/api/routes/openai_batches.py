"""Routes: the OpenAI-compatible Batch API (``/v1/batches``): create, retrieve, cancel, list.

A batch is a job of the ``openai`` handler (see :mod:`batchyard.services.openai_batches`); right after create
answers, its input file is checked in the background (a batch answers ``validating`` until then).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, ConfigDict, Field

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.app import Batchyard
from batchyard.openai_wire import Batch, BatchList, job_id_of
from batchyard.services.openai_batches import DEFAULT_BATCH_PAGE, MAX_BATCH_PAGE

router = APIRouter(prefix="/v1/batches", tags=["openai"])
log = logging.getLogger("batchyard.api")

Endpoint = Literal[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
]


class BatchCreateIn(BaseModel):
    """``client.batches.create(...)``'s body. Unknown fields are ignored, as OpenAI ignores them."""

    model_config = ConfigDict(extra="ignore")

    input_file_id: str = Field(description="A file uploaded with purpose 'batch'")
    endpoint: Endpoint
    completion_window: Literal["24h"]
    metadata: dict[str, Any] | None = Field(None, description="At most 16 pairs; keys <= 64, values <= 512 chars")
    output_expires_after: dict[str, Any] | None = Field(
        None, description="{anchor: 'created_at', seconds: 3600..2592000} for the output and error files"
    )


@router.post("", summary="Create a batch (OpenAI batches.create)")
def create_batch(body: BatchCreateIn, background: BackgroundTasks, app: BatchyardDep, principal: PrincipalDep) -> Batch:
    batch = app.openai_batches.create(
        principal,
        input_file_id=body.input_file_id,
        endpoint=body.endpoint,
        completion_window=body.completion_window,
        metadata=body.metadata,
        output_expires_after=body.output_expires_after,
    )
    background.add_task(_validate, app, batch.id)
    return batch


def _validate(app: Batchyard, batch: str) -> None:
    # After the answer; maintenance does the same for any batch this misses (a crash, another process's upload).
    job_id = job_id_of(batch)
    if job_id is None:
        return
    try:
        app.openai_batches.validate(job_id)
    except Exception:  # logged now, with its traceback; maintenance tries again once the claim runs out
        log.exception("validating batch %s failed", batch)


@router.get("", summary="List batches, newest first (OpenAI batches.list)")
def list_batches(
    app: BatchyardDep,
    principal: PrincipalDep,
    after: Annotated[str | None, Query(description="The last batch id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH_PAGE, description="Batches per page")] = DEFAULT_BATCH_PAGE,
) -> BatchList:
    return app.openai_batches.list_batches(principal, after=after, limit=limit)


@router.get("/{batch_id}", summary="Retrieve a batch (OpenAI batches.retrieve)")
def retrieve_batch(batch_id: str, app: BatchyardDep, principal: PrincipalDep) -> Batch:
    return app.openai_batches.get(batch_id, principal)


@router.post("/{batch_id}/cancel", summary="Cancel a batch (OpenAI batches.cancel)")
def cancel_batch(batch_id: str, app: BatchyardDep, principal: PrincipalDep) -> Batch:
    return app.openai_batches.cancel(batch_id, principal)
