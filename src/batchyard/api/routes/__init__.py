"""Route modules, one per area; each exposes ``router``."""

from __future__ import annotations

from fastapi import FastAPI


def register_routes(api: FastAPI) -> None:
    from batchyard.api.routes import files, items, jobs, keys, results, session, stats, stream, system

    for module in (system, session, keys, jobs, items, results, files, stats, stream):
        api.include_router(module.router)
    api.include_router(session.page_router)
