"""What every JSON request body must be: only the fields its model names, and only text the databases can store.

A lone surrogate (``"\\ud800"``) is valid JSON and a valid Python ``str``, but UTF-8 cannot encode it: stored in a
JSON column it made every later read of the row fail. ``NaN`` and ``Infinity`` are not JSON at all, though Python's
json module reads them. :func:`refuse_unstorable_text` runs before any route's own validation and answers 422
naming the exact place (``tags.1``, ``params.a.b``, ``items.0.text``). NUL is refused
by :data:`PlainText` only where it would reach a plain text column (PostgreSQL's ``text`` cannot hold it); inside
JSON values (params, metadata, items) it is escaped by JSON and stored fine on both databases.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from batchyard.core.storable import is_encodable

# Where a lone surrogate can hide in a JSON body: a \uD800-\uDFFF escape, or raw bytes ED A0..BF .. which
# json.loads decodes leniently (it reads bytes with "surrogatepass"); and the non-JSON numbers json.loads takes.
# Valid pairs, and these words inside strings, match too: the walk sorts them out.
_MAYBE_UNSTORABLE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]|NaN|Infinity")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SURROGATE_MESSAGE = "text with a lone surrogate (such as \\ud800) cannot be stored; send valid Unicode text"


class RequestModel(BaseModel):
    """Base of every JSON request body: an unknown field is a 422 (a typo must not be silently ignored), and the
    OpenAPI schema says so (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX``, safe to put in an error message."""
    return text if is_encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_nul(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "text cannot contain NUL characters (\\u0000)")
    return text


PlainText = Annotated[str, AfterValidator(_refuse_nul)]
"""A string stored in a plain text column: no NUL (PostgreSQL cannot store it)."""


def unstorable_at(value: Any) -> tuple[list[str | int], str] | None:
    """Where the first unstorable value is (keys and list indexes) and what is wrong with it, or None: a string or
    key with a lone surrogate, or a number that is not JSON (NaN, Infinity)."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, str):
            if not is_encodable(current):
                return path, _SURROGATE_MESSAGE
        elif isinstance(current, float):
            if not math.isfinite(current):
                return path, "NaN and Infinity are not JSON numbers; send a number or null"
        elif isinstance(current, dict):
            entries = list(current.items())
            for key, item in reversed(entries):
                if isinstance(key, str) and not is_encodable(key):
                    return [*path, printable(key)], _SURROGATE_MESSAGE
                stack.append(([*path, key], item))
        elif isinstance(current, list):
            stack.extend(([*path, index], item) for index, item in reversed(list(enumerate(current))))
    return None


async def refuse_unstorable_text(request: Request) -> None:
    """A dependency of every API route: 422 for a JSON body holding what no database can store."""
    if request.method not in _BODY_METHODS or not _is_json(request.headers.get("content-type")):
        return
    raw = await request.body()  # already read (and kept) by FastAPI for a route with a body
    if not _MAYBE_UNSTORABLE.search(raw) and not raw[:4].count(0):  # UTF-16/32 bodies (NUL bytes) get walked
        return
    try:
        body = await request.json()  # parsed once: Starlette keeps the result for the route
    except ValueError:
        return  # the route reports malformed JSON itself
    found = unstorable_at(body)
    if found is not None:
        path, message = found
        raise RequestValidationError(
            [{"type": "unstorable_value", "loc": ("body", *path), "input": None, "msg": message}]
        )


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a Content-Type as JSON
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")
