"""Handlers: named functions that process one item, sync or async, each with its own limits; and the worker
resources they share (one value per worker process, see :class:`ResourceSpec`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from batchyard.errors import ConfigError, UnknownHandler

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
    resources: tuple[str, ...] = ()  # worker resources made ready before each item (see ResourceSpec)
    admit: HandlerFunction | None = None  # ``fn(item, ctx)`` before each item (may raise PauseJob or SkipItem)
    admit_is_async: bool = False

    def __call__(self, item: Any, ctx: Any) -> Any:
        return self.function(item, ctx)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A value each worker process makes once, on first need, shares between its items and cleans up when it
    stops (a browser, a loaded model, a connection pool). See :meth:`batchyard.Batchyard.resource`."""

    name: str
    factory: Callable[[], Any]

    @property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.factory)

    @property
    def is_async_generator(self) -> bool:
        return inspect.isasyncgenfunction(self.factory)


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}
        self._resources: dict[str, ResourceSpec] = {}

    def register(
        self,
        name: str,
        function: HandlerFunction,
        *,
        concurrency: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        description: str | None = None,
        resources: Sequence[str] = (),
        admit: HandlerFunction | None = None,
    ) -> HandlerSpec:
        if not name or len(name) > 200:
            raise ValueError("a handler name is 1 to 200 characters")
        is_async = inspect.iscoroutinefunction(function)
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if isinstance(resources, str):
            raise ValueError(f"resources is a list of resource names, e.g. resources=[{resources!r}]")
        if admit is not None and not callable(admit):
            raise ValueError("admit must be a function (item, ctx) -> None, sync or async")
        spec = HandlerSpec(
            name=name,
            function=function,
            is_async=is_async,
            concurrency=concurrency or (DEFAULT_ASYNC_CONCURRENCY if is_async else DEFAULT_SYNC_CONCURRENCY),
            max_attempts=max_attempts,
            timeout_seconds=timeout,
            description=description or (inspect.getdoc(function) or "").split("\n")[0],
            resources=tuple(resources),
            admit=admit,
            admit_is_async=admit is not None and inspect.iscoroutinefunction(admit),
        )
        self._handlers[name] = spec
        return spec

    def register_resource(self, name: str, factory: Callable[[], Any]) -> ResourceSpec:
        """A worker resource: ``factory`` is a generator or async generator function that yields the value once
        (the code after ``yield`` cleans up), or a function returning a context manager or async context manager."""
        if not name or len(name) > 200:
            raise ValueError("a resource name is 1 to 200 characters")
        if not callable(factory):
            raise ValueError(f"resource {name!r}: the factory must be a function, got {factory!r}")
        spec = ResourceSpec(name, factory)
        self._resources[name] = spec
        return spec

    def resources(self) -> dict[str, ResourceSpec]:
        return dict(self._resources)

    def check_resources(self, handlers: Sequence[str]) -> None:
        """Every resource these handlers declare is registered (checked when a worker starts: a handler may be
        registered before its resources)."""
        for spec in (self.get(name) for name in handlers):
            missing = [r for r in spec.resources if r not in self._resources]
            if missing:
                known = ", ".join(sorted(self._resources)) or "none"
                raise ConfigError(
                    f"handler {spec.name!r} needs resource {missing[0]!r}, which is not registered (known: {known}); "
                    f"register it with @app.resource({missing[0]!r})"
                )

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
