"""Request dependencies: the application, and the caller (an API key, or a dashboard session plus CSRF)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from batchyard.app import Batchyard
from batchyard.errors import Unauthenticated
from batchyard.services.auth import Principal

SESSION_COOKIE = "batchyard_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer by_...`")
session_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The dashboard's session cookie; writes also need the X-CSRF-Token header",
)


async def get_batchyard(request: Request) -> Batchyard:
    # async: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request for an attribute read
    app: Batchyard = request.app.state.batchyard
    return app


BatchyardDep = Annotated[Batchyard, Depends(get_batchyard)]


def current_principal(
    request: Request,
    app: BatchyardDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: Annotated[str | None, Depends(session_scheme)],
) -> Principal:
    """Who is calling. A Bearer key wins over a session cookie; a cookie session must send the CSRF token on
    every state-changing request."""
    auth = app.auth
    if credentials is not None:
        return auth.authenticate_key(credentials.credentials)
    if request.headers.get("authorization"):
        raise Unauthenticated("the Authorization header must be 'Bearer <API key>'")
    if session:
        return auth.session(
            session, request.headers.get(CSRF_HEADER), state_changing=request.method not in SAFE_METHODS
        )
    raise Unauthenticated(
        "missing API key: send 'Authorization: Bearer <key>' (create one with 'batchyard keys create')"
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]
