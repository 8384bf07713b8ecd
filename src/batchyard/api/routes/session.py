"""Dashboard sign-in: a one-time login token or an API key becomes an HttpOnly session cookie plus a CSRF
token the page sends back on every state-changing request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Response
from pydantic import BaseModel, Field

from batchyard.api.bodies import RequestModel
from batchyard.api.deps import SESSION_COOKIE, BatchyardDep
from batchyard.errors import InvalidRequest, Unauthenticated
from batchyard.services.auth import SESSION_TTL_SECONDS

router = APIRouter(prefix="/api/v1/session", tags=["session"])


class LoginRequest(RequestModel):
    token: str | None = Field(None, max_length=200, description="The one-time token printed by `batchyard serve`")
    api_key: str | None = Field(None, max_length=200, description="An API key")


class SessionOut(BaseModel):
    owner: str
    role: str
    csrf_token: str


@router.post("", summary="Sign in (sets the session cookie)", responses={401: {"description": "Bad or used token/key"}})
def login(body: LoginRequest, response: Response, app: BatchyardDep) -> SessionOut:
    auth = app.auth
    if bool(body.token) == bool(body.api_key):
        raise InvalidRequest("send exactly one of token or api_key", param="token")
    principal = auth.login_with_token(body.token) if body.token else auth.authenticate_key(body.api_key or "")
    session_token, csrf = auth.start_session(principal)
    response.set_cookie(
        SESSION_COOKIE, session_token, max_age=int(SESSION_TTL_SECONDS), httponly=True, samesite="strict", path="/"
    )
    return SessionOut(owner=principal.owner, role=principal.role.value, csrf_token=csrf)


@router.get("", summary="The current session and its CSRF token", responses={401: {"description": "No session"}})
def current_session(app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None) -> SessionOut:
    if not batchyard_session:
        raise Unauthenticated("not signed in")
    auth = app.auth
    principal = auth.session(batchyard_session, None, state_changing=False)
    csrf = auth.csrf_token(batchyard_session) or ""
    return SessionOut(owner=principal.owner, role=principal.role.value, csrf_token=csrf)


@router.delete("", status_code=204, summary="Sign out")
def logout(
    response: Response, app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None
) -> Response:
    if batchyard_session:
        app.auth.end_session(batchyard_session)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response
