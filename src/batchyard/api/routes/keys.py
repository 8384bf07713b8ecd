"""API keys over HTTP: list (by prefix; never the key), create (shown once), revoke. Who may do what:
:mod:`batchyard.services.keys`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from batchyard.api.bodies import PlainText, RequestModel
from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.core.roles import Role
from batchyard.errors import NotFound
from batchyard.wire import DataList, ErrorResponse, KeyOut, NewKeyOut

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])
_E = {"model": ErrorResponse}


class KeyCreate(RequestModel):
    owner: PlainText | None = Field(None, max_length=200, description="Admins only; default: the caller's owner")
    role: Role = Role.MEMBER
    name: PlainText | None = Field(None, max_length=200)


@router.get("", summary="List API keys", responses={401: _E})
def list_keys(
    app: BatchyardDep,
    principal: PrincipalDep,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only")] = None,
) -> DataList[KeyOut]:
    return DataList[KeyOut](data=[KeyOut.of(r) for r in app.keys.list(principal, owner=owner)])


@router.post("", status_code=201, summary="Create an API key", responses={400: _E, 401: _E, 403: _E, 422: _E})
def create_key(body: KeyCreate, app: BatchyardDep, principal: PrincipalDep) -> NewKeyOut:
    key, record = app.keys.create(principal, owner=body.owner, role=body.role, name=body.name)
    return NewKeyOut.of_new(key, record)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key", responses={401: _E, 403: _E, 404: _E})
def revoke_key(key_id: str, app: BatchyardDep, principal: PrincipalDep) -> Response:
    if not app.keys.revoke(key_id, principal):
        raise NotFound(f"API key {key_id!r} is already revoked", param="key_id")
    return Response(status_code=204)
