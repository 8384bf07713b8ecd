"""Built-in handlers: ``openai`` (OpenAI-format requests to your upstreams) and ``http`` (one request per item).

Both are registered on every app (``Batchyard(builtin_handlers=False)`` leaves them out); what they need to run
(aiohttp) is imported at their first item. A worker offers ``openai`` only when an upstream is configured
(``--upstream``, ``BATCHYARD_UPSTREAM_URL`` or ``BATCHYARD_UPSTREAMS_FILE``; see :func:`served_handlers`), so a
worker with nowhere to send requests never takes them from one that has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from batchyard.handlers import http
from batchyard.handlers.openai import HANDLER_CONCURRENCY, HANDLER_NAME, make_openai_handler

if TYPE_CHECKING:
    from batchyard.registry import HandlerRegistry
    from batchyard.settings import Settings

BUILTIN_HANDLERS = (HANDLER_NAME, http.HANDLER_NAME)


def register_builtin_handlers(registry: HandlerRegistry, settings: Callable[[], Settings]) -> None:
    """Add the built-in handlers to ``registry``, keeping any handler of the same name already there."""
    if HANDLER_NAME not in registry:
        function = make_openai_handler(settings)
        function.__batchyard_builtin__ = True  # type: ignore[attr-defined]
        registry.register(
            HANDLER_NAME,
            function,
            concurrency=HANDLER_CONCURRENCY,
            description="Forward OpenAI-format requests (a batch's lines) to the upstream for their model",
        )
    if http.HANDLER_NAME not in registry:
        registry.register(
            http.HANDLER_NAME,
            http.make_http_handler(settings),
            concurrency=http.HANDLER_CONCURRENCY,
            description="One HTTP request per item (public addresses only unless BATCHYARD_ALLOW_PRIVATE_URLS)",
        )


def served_handlers(registry: HandlerRegistry, settings: Settings) -> list[str]:
    """The handlers a worker with ``settings`` takes items of by default: all of ``registry``'s, but the
    built-in ``openai`` only with an upstream to send requests to."""
    return [
        name
        for name in registry.names()
        if settings.has_upstream
        or name != HANDLER_NAME
        or not getattr(registry.get(name).function, "__batchyard_builtin__", False)
    ]
