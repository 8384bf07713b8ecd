"""Quotas over HTTP: read one (an admin, or the owner itself), set or remove one (an admin), list them. Who may
do what and what a change means: :mod:`batchyard.services.quotas`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import ConfigDict, Field

from batchyard.api.bodies import RequestModel
from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.services.quotas import MAX_COUNT
from batchyard.wire import DataList, ErrorResponse, QuotaOut

router = APIRouter(prefix="/api/v1/quotas", tags=["quotas"])
_E = {"model": ErrorResponse}
ProjectQuery = Annotated[
    str | None,
    Query(max_length=200, description="The quota of this project of the owner (default: the owner's own quota)"),
]


class QuotaChange(RequestModel):
    """Only the fields given change; a limit set to null is cleared (no limit). A new quota's period is total."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a JSON false is not a limit of 0, nor "5" a number

    period: Literal["day", "month", "total"] | None = Field(None, description="day, month (UTC) or total")
    items: int | None = Field(None, ge=0, le=MAX_COUNT, description="Items that may start in a period")
    tokens: int | None = Field(None, ge=0, le=MAX_COUNT, description="Tokens that may be spent in a period")
    cost: float | None = Field(None, ge=0, allow_inf_nan=False, description="Cost that may be spent in a period")
    max_running: int | None = Field(None, ge=0, le=1_000_000, description="Items running at once, at most")


@router.get("", summary="List quotas", responses={401: _E, 403: _E})
def list_quotas(
    app: BatchyardDep,
    principal: PrincipalDep,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only: this owner's")] = None,
) -> DataList[QuotaOut]:
    return DataList[QuotaOut](data=[QuotaOut.of(v) for v in app.quotas.list(principal, owner=owner)])


@router.get("/{owner}", summary="Read an owner's quota and its usage", responses={401: _E, 403: _E, 422: _E})
def get_quota(owner: str, app: BatchyardDep, principal: PrincipalDep, project: ProjectQuery = None) -> QuotaOut:
    return QuotaOut.of(app.quotas.get(owner, principal, project=project))


@router.put("/{owner}", summary="Set an owner's quota (admin)", responses={400: _E, 401: _E, 403: _E, 422: _E})
def put_quota(
    owner: str, body: QuotaChange, app: BatchyardDep, principal: PrincipalDep, project: ProjectQuery = None
) -> QuotaOut:
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("period", "") is None:
        changes.pop("period")  # period cannot be cleared: null leaves it as it is
    return QuotaOut.of(app.quotas.set(owner, changes, principal, project=project))


@router.delete("/{owner}", summary="Remove an owner's quota (admin)", responses={401: _E, 403: _E, 404: _E})
def delete_quota(owner: str, app: BatchyardDep, principal: PrincipalDep, project: ProjectQuery = None) -> QuotaOut:
    return QuotaOut.of(app.quotas.remove(owner, principal, project=project))
