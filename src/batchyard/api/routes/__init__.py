"""Route modules, one per area; each exposes ``router``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from batchyard.api.bodies import refuse_unstorable_text
from batchyard.openai_wire import OpenAIErrorResponse
from batchyard.wire import ErrorResponse

_ERROR = {"model": ErrorResponse}
# What any route may answer besides its own: a malformed request, no or a bad key, a forbidden write, a missing
# (or someone else's) resource, an illegal move, a body over the limit, invalid values.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "Malformed request"},
    401: {**_ERROR, "description": "Missing or invalid API key"},
    403: {**_ERROR, "description": "The key's role does not allow this"},
    404: {**_ERROR, "description": "No such resource (or another owner's)"},
    409: {**_ERROR, "description": "Not possible in the resource's current state"},
    413: {**_ERROR, "description": "Request body too large"},
    422: {**_ERROR, "description": "Invalid values"},
}


_OPENAI_ERROR = {"model": OpenAIErrorResponse}
# The same under /v1/, in OpenAI's error shape (its parameter mistakes are 400s).
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_OPENAI_ERROR, "description": "Missing or invalid parameter"},
    401: {**_OPENAI_ERROR, "description": "Missing or invalid API key"},
    403: {**_OPENAI_ERROR, "description": "The key's role does not allow this"},
    404: {**_OPENAI_ERROR, "description": "No such file or batch (or another owner's)"},
    409: {**_OPENAI_ERROR, "description": "Not possible in the batch's current state"},
    413: {**_OPENAI_ERROR, "description": "Request body too large"},
}


def register_routes(api: FastAPI) -> None:
    from batchyard.api.routes import (
        errorgroups,
        files,
        items,
        jobs,
        keys,
        metrics,
        openai_batches,
        openai_files,
        quotas,
        results,
        session,
        stats,
        stream,
        system,
        webhooks,
    )

    for module in (
        system,
        metrics,
        session,
        keys,
        jobs,
        errorgroups,
        items,
        results,
        files,
        stats,
        stream,
        quotas,
        webhooks,
    ):
        api.include_router(module.router, responses=COMMON_ERRORS, dependencies=[Depends(refuse_unstorable_text)])
    for module in (openai_files, openai_batches):
        api.include_router(module.router, responses=OPENAI_ERRORS, dependencies=[Depends(refuse_unstorable_text)])
