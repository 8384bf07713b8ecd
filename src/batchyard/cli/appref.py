"""``--app``: finding the user's Batchyard instance from ``module:attr``, or from ``module`` alone."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batchyard.errors import ConfigError

if TYPE_CHECKING:
    from batchyard.app import Batchyard

DEFAULT_APP_ATTRIBUTE = "app"

DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        metavar="",
        help="Also offer the demo handlers (echo, sleep, flaky) with --app. Without --app they are the only ones.",
    ),
]


def load_user_app(ref: str) -> Batchyard:
    """Import ``module:attr``, or ``module`` and find its app (the current directory first on ``sys.path``).

    With no ``:attr`` the module's ``app`` is used, else its only module-level :class:`Batchyard` instance.
    """
    from batchyard.app import Batchyard

    module_name, colon, attr = ref.partition(":")
    if not module_name or (colon and not attr):
        raise ConfigError(f"--app {ref!r}: expected MODULE or MODULE:ATTR, e.g. mypkg.jobs or mypkg.jobs:app")
    module = _import(ref, module_name)
    target = _attribute(ref, module, attr) if attr else _find_app(ref, module)
    if not isinstance(target, Batchyard):
        raise ConfigError(f"--app {ref!r} is of type {type(target).__name__}, not a Batchyard app")
    return target


def _import(ref: str, module_name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"--app {ref!r}: could not import module {module_name!r} (looked in {cwd} and sys.path)"
            ) from exc
        raise


def _attribute(ref: str, module: ModuleType, attr: str) -> Any:
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"--app {ref!r}: module {module.__name__!r} has no attribute {attr!r}") from None
    return target


def _find_app(ref: str, module: ModuleType) -> Batchyard:
    """``module.app`` if it is an app, else the one app the module defines; a clear error for none or several."""
    from batchyard.app import Batchyard

    default = getattr(module, DEFAULT_APP_ATTRIBUTE, None)
    if isinstance(default, Batchyard):
        return default
    found = sorted(name for name, value in vars(module).items() if isinstance(value, Batchyard))
    if len(found) == 1:
        return getattr(module, found[0])  # type: ignore[no-any-return]
    if found:
        choices = " or ".join(f"{module.__name__}:{name}" for name in found)
        raise ConfigError(f"--app {ref!r}: module {module.__name__!r} has several Batchyard apps; name one: {choices}")
    raise ConfigError(
        f"--app {ref!r}: found no Batchyard app in module {module.__name__!r} (looked for an attribute "
        f"{DEFAULT_APP_ATTRIBUTE!r} and for any Batchyard instance at module level); "
        f"name it with MODULE:ATTR, e.g. {module.__name__}:my_app"
    )
