"""Plain option values without pydantic: what typer does for them, minus the import (issue 6 item 17).

Typer 0.2x (the versions with ``typer._coercion``) coerces every option and argument value with a pydantic
``TypeAdapter`` built the first time the parameter is processed, even for a value that is absent: importing
pydantic and building a dozen adapters cost ``batchyard jobs list`` about 100 ms, a third of the time it may
take. The values Batchyard's commands take are mostly plain: text, a whole number in a range, a folder, a list of
texts. :func:`install` gives those parameters a coercion that returns what typer's adapter would, without
pydantic; any other type, and any value it is not sure of, goes to typer's own adapter, built then, so every
error is still worded by typer. ``tests/unit/test_cli_coercion.py`` holds both to the same answers.

With a typer that has no such hook (older ones never imported pydantic) :func:`install` does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def install() -> None:
    """From now on, typer coerces plain parameters here (once per process; nothing with a typer without the hook).

    Typer builds a parameter's coercion on first use (``_TyperParameter.get_runtime_param``), for the
    parameters a command declares and those it adds while parsing (``--help``): wrapping that one method covers
    both, before any value is processed."""
    from typer import core

    parameter = getattr(core, "_TyperParameter", None)
    typer_runtime_param = getattr(parameter, "get_runtime_param", None)
    if parameter is None or typer_runtime_param is None or getattr(typer_runtime_param, "plain", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            kind = plain_kind(self)
            if kind is not None:
                self._runtime_param = PlainCoercion(self, kind)
        return typer_runtime_param(self)

    get_runtime_param.plain = True  # type: ignore[attr-defined]
    parameter.get_runtime_param = get_runtime_param


def plain_kind(param: Any) -> str | None:
    """``str``, ``bool``, ``int``, ``path`` or ``str-list`` for a parameter coerced here; None for typer's own."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.is_file or descriptor.is_choice:
        return None
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    annotation = descriptor.annotation
    many = param.multiple or param.nargs == -1
    if many:
        return "str-list" if annotation == list[str] else None
    if param.nargs != 1:
        return None
    if annotation is str:
        return "str"
    if annotation is bool:
        return "bool"
    if annotation is int and not info.clamp:
        return "int"
    if annotation is Path and descriptor.is_path and info.path_type in (None, Path) and not info.allow_dash:
        return "path"
    return None


class PlainCoercion:
    """One parameter's coercion: typer's answer for a plain value, typer's own adapter for anything else."""

    def __init__(self, param: Any, kind: str) -> None:
        self.param = param
        self.kind = kind
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        many = param.multiple or param.nargs == -1
        if value is None:  # as typer's RuntimeParam.coerce: no value, nothing to convert
            return () if many else None
        if self.kind == "str" and isinstance(value, str):
            return value
        if self.kind == "bool" and isinstance(value, bool):
            return value
        if self.kind == "str-list" and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        if self.kind == "int":
            number = _whole_number(value)
            info = self.param.type_descriptor.parameter_info
            if (
                number is not None
                and (info.min is None or number >= info.min)
                and (info.max is None or number <= info.max)
            ):
                return number
        if self.kind == "path" and isinstance(value, str | Path) and "\x00" not in str(value):
            return _typer_path(Path(value), param, ctx)
        return self.typer_coercion().coerce(value, param=param, ctx=ctx)

    def typer_coercion(self) -> Any:
        """Typer's own coercion of the parameter (pydantic's adapter), built on first need."""
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self.param.type_descriptor)
        return self._typer


def _whole_number(value: Any) -> int | None:
    """An int, or a text of ASCII digits: the values pydantic reads as that same number; None for others (a
    sign, blanks, underscores, a float: typer's adapter decides)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _typer_path(value: Path, param: Any, ctx: Any) -> Any:
    """Typer's check of a path option (exists, file or folder, readable), given a Path so it needs no pydantic."""
    from typer._param_types import coerce_cli_path

    info = param.type_descriptor.parameter_info
    return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
