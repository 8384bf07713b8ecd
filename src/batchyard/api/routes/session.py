"""Dashboard sign-in: a one-time login token or an API key becomes an HttpOnly session cookie plus a CSRF
token the page sends back on every state-changing request."""

from __future__ import annotations

import html
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


page_router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Batchyard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}
h1{{font-size:1.6rem}}code{{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}}a{{color:#2563eb}}</style>
</head><body><h1>Batchyard</h1>{body}</body></html>"""


@page_router.get("/login")
def login_page(app: BatchyardDep, token: str | None = None) -> Response:
    """The link ``batchyard serve`` prints: spends the one-time token, sets the session cookie, goes home."""
    from fastapi.responses import HTMLResponse, RedirectResponse

    if not token or len(token) > 200:
        return HTMLResponse(
            _PAGE.format(
                body="<p>Open the link that <code>batchyard serve</code> printed, or sign in with an API key.</p>"
            ),
            status_code=400,
        )
    auth = app.auth
    try:
        principal = auth.login_with_token(token)
    except Unauthenticated as exc:
        return HTMLResponse(_PAGE.format(body=f"<p>{html.escape(exc.message)}</p>"), status_code=401)
    session_token, _ = auth.start_session(principal)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_token, max_age=int(SESSION_TTL_SECONDS), httponly=True, samesite="strict", path="/"
    )
    return response


@page_router.get("/")
def home(app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None) -> Response:
    """Where the dashboard lives; until it ships, a page that says who is signed in and where the API is."""
    from fastapi.responses import HTMLResponse

    who = None
    if batchyard_session:
        try:
            who = app.auth.session(batchyard_session, None, state_changing=False)
        except Unauthenticated:
            who = None
    if who is None:
        body = (
            "<p>Not signed in. Open the login link printed by <code>batchyard serve</code>.</p>"
            '<p>The API is documented at <a href="/docs">/docs</a>.</p>'
        )
    else:
        body = (
            f"<p>Signed in as <b>{html.escape(who.owner)}</b> ({who.role.value}).</p>"
            '<p>The API is documented at <a href="/docs">/docs</a>; every route also accepts '
            "<code>Authorization: Bearer &lt;API key&gt;</code>.</p>"
        )
    return HTMLResponse(_PAGE.format(body=body))
