"""Health, readiness, the caller, live workers and registered handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.errors import WorkerCrashed
from batchyard.wire import DataList, ErrorResponse, HandlerOut, WorkerOut

router = APIRouter()


class Health(BaseModel):
    status: str


class Me(BaseModel):
    owner: str
    role: str
    via: str


@router.get("/healthz", tags=["system"], summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["system"],
    summary="The database is reachable (and this server's worker runs)",
    responses={
        503: {
            "description": "The database is not reachable, or this server's own worker crashed and is being restarted"
        }
    },
)
def readyz(app: BatchyardDep, request: Request) -> Health:
    app.system.ping()
    embedded = request.app.state.embedded_worker
    if embedded is not None and not embedded.alive:
        raise WorkerCrashed(
            f"no live worker in this server: it crashed {embedded.crashes} time(s) and is "
            "being restarted (the server log has the traceback)"
        )
    return Health(status="ready")


@router.get("/api/v1/me", tags=["system"], summary="Who the caller is")
def me(principal: PrincipalDep) -> Me:
    return Me(owner=principal.owner, role=principal.role.value, via=principal.via)


@router.get(
    "/api/v1/workers",
    tags=["system"],
    summary="Workers: what each runs, last heartbeat, alive (where they run: admins only)",
    responses={422: {"model": ErrorResponse}},
)
def list_workers(
    app: BatchyardDep,
    principal: PrincipalDep,
    recent: Annotated[
        float | None,
        Query(ge=0, le=7 * 86400, description="Also workers stopped or lost within this many seconds"),
    ] = None,
) -> DataList[WorkerOut]:
    """Live workers, oldest first, each with `alive`, `last_seen_at` (its last heartbeat), `in_flight` and
    `running`: the jobs it holds items of now. With `recent`, stopped and lost workers seen in that window too."""
    return DataList[WorkerOut](data=app.system.workers(principal, recent_seconds=recent))


@router.get("/api/v1/handlers", tags=["system"], summary="Handlers known here or on a live worker")
def list_handlers(app: BatchyardDep, principal: PrincipalDep) -> DataList[HandlerOut]:
    return DataList[HandlerOut](data=app.system.handlers())
