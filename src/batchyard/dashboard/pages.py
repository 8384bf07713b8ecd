"""The dashboard's pages: who is signed in, the data each page paints first, and the template that draws it.

Every page but ``/login`` needs a session (the cookie the login link or the sign-in form sets); without one it
redirects to ``/login?next=...``. A page reads through the services with the session's principal, so it shows
exactly what the API would answer that user, and embeds it as JSON for its module (``static/js/``) to draw and
keep live. Filters live in the query string, so every view can be bookmarked and shared.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from batchyard import __version__
from batchyard.api.deps import SESSION_COOKIE, BatchyardDep
from batchyard.app import Batchyard
from batchyard.core.cursors import ITEM_CURSOR, JOB_SORT_KEYS, job_cursor
from batchyard.core.lifecycle import JOB_TRANSITIONS, TERMINAL_JOB_STATUSES, Action, ItemStatus, JobStatus
from batchyard.core.records import JobQuery
from batchyard.dashboard import asset_prefix
from batchyard.errors import BatchyardError, NotFound, Unauthenticated
from batchyard.openai_wire import OPENAI_HANDLER
from batchyard.services.auth import SESSION_TTL_SECONDS, Principal
from batchyard.wire import ItemOut, JobOut

router = APIRouter(include_in_schema=False)

JOBS_PAGE_SIZE = 50
ITEMS_PAGE_SIZE = 25
MAX_PARAM_CHARS = 200
# The Jobs page's filter tabs and the statuses each shows.
TABS: dict[str, tuple[str, ...]] = {
    "all": (),
    "active": ("queued", "running", "paused", "finalizing", "cancelling"),
    "completed": ("completed",),
    "failed": ("failed", "expired"),
    "cancelled": ("cancelled",),
}
USER_ACTIONS = (Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RETRY, Action.DELETE)
NAV = (
    ("jobs", "/", "Jobs"),
    ("history", "/history", "History"),
    ("workers", "/workers", "Workers"),
    ("files", "/files", "Files"),
)


@functools.cache
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("batchyard.dashboard", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


def allowed_actions() -> dict[str, list[str]]:
    """For each job status, the user actions the lifecycle allows from it (the pages show only those buttons)."""
    allowed: dict[str, list[str]] = {status.value: [] for status in JobStatus}
    for status, action in JOB_TRANSITIONS:
        if action in USER_ACTIONS:
            allowed[status.value].append(action.value)
    return allowed


def script_json(data: Any) -> str:
    """JSON to embed in a ``<script type="application/json">``: no ``</script>``, comment or entity can end it
    early, whatever a job's description says."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def openai_endpoints() -> list[str]:
    """The endpoints an OpenAI-compatible batch may target (what ``POST /v1/batches`` accepts)."""
    from typing import get_args

    from batchyard.api.routes.openai_batches import Endpoint

    return list(get_args(Endpoint))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return "/"
    return target


# -- sessions ------------------------------------------------------------------------------------------------------


class Viewer:
    """The signed-in user of a page: who, with which role, and the CSRF token their page sends back."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    @property
    def can_write(self) -> bool:
        return self.principal.role.value != "viewer"


def _viewer(app: Batchyard, session: str | None) -> Viewer | None:
    if not session or len(session) > 500:
        return None
    auth = app.auth
    try:
        principal = auth.session(session, None, state_changing=False)
    except Unauthenticated:
        return None
    return Viewer(principal, auth.csrf_token(session) or "")


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login" if here == "/" else "/login?" + urllib.parse.urlencode({"next": here})
    return RedirectResponse(target, status_code=303)


def _render(
    template: str,
    *,
    viewer: Viewer | None,
    page: str,
    title: str,
    data: dict[str, Any] | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    boot = {
        "page": page,
        "owner": viewer.principal.owner if viewer else None,
        "role": viewer.principal.role.value if viewer else None,
        "can_write": viewer.can_write if viewer else False,
        "is_admin": viewer.principal.is_admin if viewer else False,
        "actions": allowed_actions(),
        "terminal": sorted(s.value for s in TERMINAL_JOB_STATUSES),
        "openai_handler": OPENAI_HANDLER,
        **(data or {}),
    }
    html = (
        _templates()
        .get_template(template)
        .render(
            viewer=viewer,
            page=page,
            title=title,
            nav=NAV,
            version=__version__,
            static=asset_prefix(),
            boot_json=script_json(boot),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)


def _problem(viewer: Viewer, page: str, title: str, exc: BatchyardError, status_code: int) -> HTMLResponse:
    return _render("problem.html", viewer=viewer, page=page, title=title, status_code=status_code, message=exc.message)


# -- sign-in -------------------------------------------------------------------------------------------------------


@router.get("/login")
def login_page(
    app: BatchyardDep,
    token: Annotated[str | None, Query()] = None,
    next: Annotated[str | None, Query()] = None,
    batchyard_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    """The sign-in page (an API key), and the one-time link ``batchyard serve`` prints (spends the token, sets
    the session cookie, goes on to ``next`` or home)."""
    target = safe_next(next)
    if token is None:
        if _viewer(app, batchyard_session) is not None:
            return RedirectResponse(target, status_code=303)
        return _render("login.html", viewer=None, page="login", title="Sign in", error=None, next=target)
    if len(token) > MAX_PARAM_CHARS:
        error = "That sign-in link is malformed. Copy the whole link batchyard serve printed, or use an API key."
        return _render(
            "login.html", viewer=None, page="login", title="Sign in", error=error, next=target, status_code=400
        )
    auth = app.auth
    try:
        principal = auth.login_with_token(token)
    except Unauthenticated as exc:
        return _render(
            "login.html", viewer=None, page="login", title="Sign in", error=exc.message, next=target, status_code=401
        )
    session_token, _ = auth.start_session(principal)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_token, max_age=int(SESSION_TTL_SECONDS), httponly=True, samesite="strict", path="/"
    )
    return response


# -- pages ---------------------------------------------------------------------------------------------------------


def _clip(value: str | None) -> str | None:
    return value[:MAX_PARAM_CHARS] if value else None


@router.get("/")
async def jobs_page(
    request: Request,
    app: BatchyardDep,
    tab: str = "all",
    q: str | None = None,
    owner: str | None = None,
    handler: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
    batchyard_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    """Jobs (home): stats cards, filter tabs, search, the table. Filters are the query string."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    tab = tab if tab in TABS else "all"
    sort = sort if sort.lstrip("-") in JOB_SORT_KEYS else "-created_at"
    filters = {"tab": tab, "q": _clip(q), "owner": _clip(owner), "handler": _clip(handler), "sort": sort}
    try:
        page = await run_in_threadpool(_jobs, app, viewer.principal, filters, cursor)
    except BatchyardError as exc:
        return _problem(viewer, "jobs", "Jobs", exc, exc.status)
    return _render(
        "jobs.html",
        viewer=viewer,
        page="jobs",
        title="Jobs",
        data={"filters": filters, "cursor": cursor, "jobs": page, "tabs": TABS, "page_size": JOBS_PAGE_SIZE},
        filters=filters,
        tabs=list(TABS),
    )


def _jobs(app: Batchyard, principal: Principal, filters: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    sort = filters["sort"]
    after = None
    if cursor:
        value, job_id = job_cursor(sort).decode(cursor[:500])
        after = (value, str(job_id))
    query = JobQuery(
        owner=filters["owner"],
        statuses=list(TABS[filters["tab"]]),
        handler=filters["handler"],
        search=filters["q"],
        sort=sort,
        limit=JOBS_PAGE_SIZE + 1,
        after=after,
    )
    views = app.service.list_jobs(query, principal=principal)
    has_more = len(views) > JOBS_PAGE_SIZE
    views = views[:JOBS_PAGE_SIZE]
    next_cursor = None
    if has_more and views:
        last = views[-1].job
        next_cursor = job_cursor(sort).encode(getattr(last, JOB_SORT_KEYS[sort.lstrip("-")].field), last.id)
    return {
        "data": [JobOut.of(v).model_dump(mode="json") for v in views],
        "has_more": has_more,
        "next_cursor": next_cursor,
    }


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request,
    job_id: str,
    app: BatchyardDep,
    batchyard_session: Annotated[str | None, Cookie()] = None,
) -> Response:
    """One job: progress, throughput and ETA, timeline, chart, error groups, items, downloads, actions."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    try:
        job, items = await run_in_threadpool(_job, app, viewer.principal, job_id[:MAX_PARAM_CHARS])
    except NotFound as exc:
        return _problem(viewer, "jobs", "Job not found", exc, 404)
    title = f"Job {job['id']}"
    return _render(
        "job.html",
        viewer=viewer,
        page="job",
        title=title,
        data={
            "job": job,
            "items": items,
            "page_size": ITEMS_PAGE_SIZE,
        },
        job=job,
        item_statuses=[s.value for s in ItemStatus],
    )


def _job(app: Batchyard, principal: Principal, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    job = JobOut.of(app.service.get(job_id, principal)).model_dump(mode="json")
    page, next_after = app.items.page(job_id, principal, statuses=[], after_seq=-1, limit=ITEMS_PAGE_SIZE)
    items = {
        "data": [ItemOut.of(item).model_dump(mode="json") for item in page],
        "has_more": next_after is not None,
        "next_cursor": None if next_after is None else ITEM_CURSOR.encode(next_after),
    }
    return job, items


@router.get("/new")
async def new_batch_page(
    request: Request, app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None
) -> Response:
    """New batch: a JSONL or CSV file, its preview and problems, the handler and options."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    handlers = await run_in_threadpool(app.system.handlers)
    return _render(
        "new.html",
        viewer=viewer,
        page="new",
        title="New batch",
        data={
            "handlers": [h.model_dump(mode="json") for h in handlers],
            "max_upload_bytes": app.settings.max_upload_bytes,
        },
        handlers=handlers,
        openai_handler=OPENAI_HANDLER,
        openai_endpoints=openai_endpoints(),
    )


@router.get("/history")
async def history_page(
    request: Request, app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None
) -> Response:
    """History and analytics: every job with filters and sorting, and charts over them."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    handlers = await run_in_threadpool(app.system.handlers)
    return _render(
        "history.html",
        viewer=viewer,
        page="history",
        title="History",
        data={"handlers": [h.name for h in handlers], "statuses": [s.value for s in JobStatus]},
        statuses=[s.value for s in JobStatus],
        handlers=[h.name for h in handlers],
    )


@router.get("/workers")
async def workers_page(
    request: Request, app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None
) -> Response:
    """Live workers: what each runs and when it was last heard from."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    return _render("workers.html", viewer=viewer, page="workers", title="Workers")


@router.get("/files")
async def files_page(
    request: Request, app: BatchyardDep, batchyard_session: Annotated[str | None, Cookie()] = None
) -> Response:
    """Uploaded files and the result files of finished jobs."""
    viewer = await run_in_threadpool(_viewer, app, batchyard_session)
    if viewer is None:
        return _to_login(request)
    return _render("files.html", viewer=viewer, page="files", title="Files")
