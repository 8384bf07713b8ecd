"""The web dashboard: server-rendered pages (Jinja2) with small hand-written ES modules and CSS, served by
``batchyard serve`` at ``/``.

Pages are an entry point like the API's routes: each reads the signed-in session, calls services for the data
its first paint needs, and renders a template that embeds that data as JSON. The page's module then draws it and
keeps it live over the API itself (``/api/v1/stream`` for jobs, the REST routes for everything else), sending the
session's CSRF token on every state-changing call. Nothing here is built by Node or fetched from a CDN: the
templates and ``static/`` ship inside the package, so the dashboard works offline.
"""

from __future__ import annotations

from fastapi import FastAPI

STATIC_URL = "/static"


def install(api: FastAPI) -> None:
    """Serve the dashboard's pages and its static files on ``api``."""
    from starlette.staticfiles import StaticFiles

    from batchyard.dashboard.pages import router

    api.include_router(router)
    api.mount(STATIC_URL, StaticFiles(packages=[("batchyard.dashboard", "static")]), name="static")
