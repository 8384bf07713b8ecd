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
from batchyard.api.limits import BodyLimitMiddleware, SingleValuedQueryMiddleware
from batchyard.api.security import SecurityHeadersMiddleware
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
    api.add_middleware(SingleValuedQueryMiddleware, repeatable=lambda: _array_query_parameters(api))
    api.add_middleware(SecurityHeadersMiddleware)  # outermost: the other middlewares' answers get the headers too
    from batchyard.api.routes import register_routes

    register_routes(api)
    return api


def _array_query_parameters(api: FastAPI) -> frozenset[str]:
    """Names of query parameters that some route takes as a list (worked out once, from the OpenAPI document)."""
    cached: frozenset[str] | None = getattr(api.state, "array_query_parameters", None)
    if cached is None:
        cached = frozenset(
            parameter["name"]
            for operations in api.openapi()["paths"].values() for operation in operations.values()
            for parameter in operation.get("parameters", ())
            if parameter.get("in") == "query" and _is_array(parameter.get("schema", {})))
        api.state.array_query_parameters = cached
    return cached


def _is_array(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "array" for option in options)
