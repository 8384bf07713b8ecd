"""The FastAPI application: routes, error handlers, and (for ``batchyard serve``) workers in the same process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from batchyard import __version__
from batchyard.api.errors import install_error_handlers
from batchyard.api.limits import BodyLimitMiddleware
from batchyard.app import Batchyard
from batchyard.settings import Settings

log = logging.getLogger("batchyard.api")


def create_app(settings: Settings | None = None, *, batchyard: Batchyard | None = None,
               run_workers: bool = False, worker_options: dict[str, Any] | None = None) -> FastAPI:
    """Build the HTTP API. With ``run_workers`` a worker (and maintenance) runs in the server's event loop."""
    by = batchyard or Batchyard(settings)
    by.store  # noqa: B018 - connect and migrate now, not on the first request

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker_task = None
        worker = None
        if run_workers:
            worker = by.worker(**(worker_options or {}))
            worker_task = asyncio.create_task(worker.run(), name="batchyard-worker")
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.request_stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            by.close()

    api = FastAPI(
        title="Batchyard",
        version=__version__,
        description="Self-hosted batch processing: jobs of many items, processed by workers, with live progress.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.batchyard = by
    install_error_handlers(api)
    api.add_middleware(BodyLimitMiddleware, max_request_bytes=by.settings.max_request_bytes,
                       max_upload_bytes=by.settings.max_upload_bytes)
    from batchyard.api.routes import register_routes

    register_routes(api)
    return api
