"""Handlers: named functions that process one item. Sync or async; each with its own limits."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchyard.errors import UnknownHandler

DEFAULT_ASYNC_CONCURRENCY = 256
DEFAULT_SYNC_CONCURRENCY = 8

HandlerFunction = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    name: str
    function: HandlerFunction
    is_async: bool
    concurrency: int
    max_attempts: int | None
    timeout_seconds: float | None
    description: str

    def __call__(self, item: Any, ctx: Any) -> Any:
        return self.function(item, ctx)


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}

    def register(
        self,
        name: str,
        function: HandlerFunction,
        *,
        concurrency: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        description: str | None = None,
    ) -> HandlerSpec:
        if not name or len(name) > 200:
            raise ValueError("a handler name is 1 to 200 characters")
        is_async = inspect.iscoroutinefunction(function)
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        spec = HandlerSpec(
            name=name,
            function=function,
            is_async=is_async,
            concurrency=concurrency or (DEFAULT_ASYNC_CONCURRENCY if is_async else DEFAULT_SYNC_CONCURRENCY),
            max_attempts=max_attempts,
            timeout_seconds=timeout,
            description=description or (inspect.getdoc(function) or "").split("\n")[0],
        )
        self._handlers[name] = spec
        return spec

    def get(self, name: str) -> HandlerSpec:
        try:
            return self._handlers[name]
        except KeyError:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise UnknownHandler(f"unknown handler {name!r} (known here: {known})", param="handler") from None

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def specs(self) -> list[HandlerSpec]:
        return [self._handlers[n] for n in self.names()]
