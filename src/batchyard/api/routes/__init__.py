"""Route modules, one per area; each exposes ``router``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from batchyard.api.bodies import refuse_unstorable_text
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


def register_routes(api: FastAPI) -> None:
    from batchyard.api.routes import files, items, jobs, keys, results, session, stats, stream, system

    for module in (system, session, keys, jobs, items, results, files, stats, stream):
        api.include_router(module.router, responses=COMMON_ERRORS, dependencies=[Depends(refuse_unstorable_text)])
    api.include_router(session.page_router)
