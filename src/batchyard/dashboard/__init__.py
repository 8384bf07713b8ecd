"""The web dashboard: server-rendered pages (Jinja2) with small hand-written ES modules and CSS, served by
``batchyard serve`` at ``/``.

Pages are an entry point like the API's routes: each reads the signed-in session, calls services for the data
its first paint needs, and renders a template that embeds that data as JSON. The page's module then draws it and
keeps it live over the API itself (``/api/v1/stream`` for jobs, the REST routes for everything else), sending the
session's CSRF token on every state-changing call. Nothing here is built by Node or fetched from a CDN: the
templates and ``static/`` ship inside the package, so the dashboard works offline.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any

from fastapi import FastAPI

STATIC_URL = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"


@functools.cache
def asset_prefix() -> str:
    """Where pages load the static files from: ``/static/v-<hash of their content>``. A new release (or an edited
    file) gets a new URL, so browsers may keep the files forever and a page's module imports (``./core.js``)
    resolve under the same versioned path."""
    digest = hashlib.sha256()
    root = resources.files("batchyard.dashboard") / "static"
    for path in sorted(_files(root), key=str):
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    return f"{STATIC_URL}/v-{digest.hexdigest()[:12]}"


def _files(folder: Any) -> list[Any]:
    found = []
    for entry in folder.iterdir():
        found += _files(entry) if entry.is_dir() else [entry]
    return found


def install(api: FastAPI) -> None:
    """Serve the dashboard's pages and its static files on ``api``."""
    from starlette.responses import Response
    from starlette.staticfiles import StaticFiles
    from starlette.types import Scope

    from batchyard.dashboard.pages import router

    class VersionedStaticFiles(StaticFiles):
        """Static files under ``/static/v-<hash>/...`` (cached for good) or ``/static/...`` (revalidated)."""

        def get_path(self, scope: Scope) -> str:
            path = super().get_path(scope)
            head, _, rest = path.partition("/")
            return rest if head.startswith("v-") and rest else path

        async def get_response(self, path: str, scope: Scope) -> Response:
            response = await super().get_response(path, scope)
            versioned = scope["path"].split("/", 3)[2:3] == [asset_prefix().rsplit("/", 1)[1]]
            if response.status_code in {200, 304}:
                response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
            return response

    api.include_router(router)
    api.mount(STATIC_URL, VersionedStaticFiles(packages=[("batchyard.dashboard", "static")]), name="static")
