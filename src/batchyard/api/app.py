"""The FastAPI application: routes, error handlers, and (for ``batchyard serve``) workers in the same process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from batchyard import __version__
from batchyard.api.errors import install_error_handlers
from batchyard.api.limits import BodyLimitMiddleware, SingleValuedQueryMiddleware
from batchyard.api.security import DOCS_ASSETS_URL, SecurityHeadersMiddleware
from batchyard.api.threads import limit_request_threads
from batchyard.app import Batchyard
from batchyard.core.asyncwait import wait_event
from batchyard.errors import WorkerCrashed
from batchyard.settings import Settings
from batchyard.worker import Worker

log = logging.getLogger("batchyard.api")
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
RESTART_RESET_AFTER = 60.0


def create_app(
    settings: Settings | None = None,
    *,
    batchyard: Batchyard | None = None,
    run_workers: bool = False,
    worker_options: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the HTTP API. With ``run_workers`` a worker (and maintenance) runs in the server's event loop.

    Without ``batchyard`` it serves a default app with the demo handlers, as ``batchyard serve`` does without --app.
    """
    by = batchyard or Batchyard(settings, demo_handlers=True)
    by.connect()  # connect and migrate now, not on the first request

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        limit_request_threads()
        supervisor = None
        task = None
        if run_workers:
            supervisor = api.state.embedded_worker = EmbeddedWorker(by, worker_options or {})
            task = asyncio.create_task(supervisor.run(), name="batchyard-worker")
        try:
            yield
        finally:
            if supervisor is not None and task is not None:
                supervisor.request_stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            by.close()

    # Swagger UI (/docs) and ReDoc (/redoc) load their scripts, styles and icon from DOCS_ASSETS_URL, files that
    # come with the fastapi-offline package: a self-hosted install without internet still shows its API docs.
    api = FastAPIOffline(
        title="Batchyard",
        version=__version__,
        description="Self-hosted batch processing: jobs of many items, processed by workers, with live progress.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        static_url=DOCS_ASSETS_URL,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator's own site
    )
    api.state.batchyard = by
    api.state.embedded_worker = None
    install_error_handlers(api)
    api.add_middleware(
        BodyLimitMiddleware,
        max_request_bytes=by.settings.max_request_bytes,
        max_upload_bytes=by.settings.max_upload_bytes,
    )
    api.add_middleware(SingleValuedQueryMiddleware, repeatable=lambda: _array_query_parameters(api))
    api.add_middleware(SecurityHeadersMiddleware)  # outermost: the other middlewares' answers get the headers too
    from batchyard.api.routes import register_routes

    register_routes(api)
    from batchyard.dashboard import install as install_dashboard

    install_dashboard(api)
    return api


class EmbeddedWorker:
    """``serve``'s own worker. If it crashes (logged with its traceback by the worker), a new one starts after a
    backoff (1 s doubling to 60 s; back to 1 s after a minute of health) while the API keeps serving;
    ``alive`` tells ``/readyz``."""

    def __init__(self, by: Batchyard, options: dict[str, Any]) -> None:
        self._by = by
        self._options = options
        self._worker: Worker | None = None
        self._stopping = asyncio.Event()
        self.alive = False
        self.crashes = 0

    def request_stop(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.request_stop()

    async def run(self) -> None:
        delay = RESTART_FIRST_DELAY
        while not self._stopping.is_set():
            self._worker = self._by.worker(**self._options)
            started = time.monotonic()
            self.alive = True
            try:
                await self._worker.run()
                return
            except WorkerCrashed as exc:
                self.alive = False
                self.crashes += 1
                if time.monotonic() - started > RESTART_RESET_AFTER:
                    delay = RESTART_FIRST_DELAY
                log.error("%s; starting a new worker in %.0fs", exc.message, delay)
            except Exception:  # failed to start (the database away at registration, say)
                self.alive = False
                log.exception("the built-in worker could not run; trying again in %.0fs", delay)
            await wait_event(self._stopping, delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)


def _array_query_parameters(api: FastAPI) -> frozenset[str]:
    """Names of query parameters that some route takes as a list (worked out once, from the OpenAPI document)."""
    cached: frozenset[str] | None = getattr(api.state, "array_query_parameters", None)
    if cached is None:
        cached = frozenset(
            parameter["name"]
            for operations in api.openapi()["paths"].values()
            for operation in operations.values()
            for parameter in operation.get("parameters", ())
            if parameter.get("in") == "query" and _is_array(parameter.get("schema", {}))
        )
        api.state.array_query_parameters = cached
    return cached


def _is_array(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "array" for option in options)
