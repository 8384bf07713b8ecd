"""``GET /metrics``: Prometheus text format (an admin key, or open with ``BATCHYARD_METRICS_PUBLIC=true``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from batchyard.api.deps import BatchyardDep, bearer_scheme, current_principal, session_scheme

router = APIRouter()
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    tags=["system"],
    summary="Prometheus metrics: this process's counters and the queue as the database sees it",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
def metrics(
    request: Request,
    app: BatchyardDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: Annotated[str | None, Depends(session_scheme)],
) -> Response:
    service = app.metrics
    if not service.public:  # no key needed then, and a key sent anyway is not checked either
        service.check_reader(current_principal(request, app, credentials, session))
    return Response(service.exposition(), media_type=PROMETHEUS_TEXT)
