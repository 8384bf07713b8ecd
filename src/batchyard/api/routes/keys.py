"""API keys over HTTP: list (by prefix; never the key), create (shown once), revoke.

Admins manage every owner's keys. A member may create keys for its own owner with role member or viewer and
revoke its own owner's keys; a viewer only lists its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from batchyard.api.bodies import PlainText, RequestModel
from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.core.roles import Role
from batchyard.errors import NotFound
from batchyard.services.auth import AuthService
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
    records = app.store.auth.list_api_keys(owner if principal.is_admin else principal.owner)
    return DataList[KeyOut](data=[KeyOut.of(r) for r in records])


@router.post("", status_code=201, summary="Create an API key", responses={400: _E, 401: _E, 403: _E, 422: _E})
def create_key(body: KeyCreate, app: BatchyardDep, principal: PrincipalDep) -> NewKeyOut:
    principal.require_write()
    owner = body.owner or principal.owner
    if owner != principal.owner or body.role is Role.ADMIN:
        principal.require_admin()
    key, record = AuthService(app.store).create_key(owner, body.role, body.name)
    return NewKeyOut.of_new(key, record)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key", responses={401: _E, 403: _E, 404: _E})
def revoke_key(key_id: str, app: BatchyardDep, principal: PrincipalDep) -> Response:
    principal.require_write()
    record = app.store.auth.get_api_key(key_id)
    if record is None or not principal.can_see(record.owner):
        raise NotFound(f"no API key {key_id!r}", param="key_id")
    if not app.store.auth.revoke_api_key(key_id):
        raise NotFound(f"API key {key_id!r} is already revoked", param="key_id")
    return Response(status_code=204)
