"""Text both databases can store.

SQLite and PostgreSQL take UTF-8, and PostgreSQL's ``text`` refuses NUL. Python strings can hold what neither
takes: a lone surrogate is valid JSON (``"\\ud800"``) and a valid ``str``, and encoding it to UTF-8 raises.
Everything written from untrusted input or a handler goes through here: JSON is escaped to ASCII when its raw
form would not encode, plain text (messages, tracebacks) has the offending characters escaped, and checks at the
door say exactly where unstorable text is.
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def is_storable(text: str) -> bool:
    """True if ``text`` encodes as UTF-8 and has no NUL (PostgreSQL's text cannot hold one)."""
    return "\x00" not in text and is_encodable(text)


def is_encodable(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (which UTF-8, and so neither database, can store)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_text(value: Any) -> str:
    """Compact JSON of ``value``; ASCII-escaped when the raw text would hold a lone surrogate.

    Raises ``TypeError``/``ValueError`` like :func:`json.dumps` for values JSON cannot represent (NaN included).
    NUL inside strings is always escaped by JSON, so the result is storable either way.
    """
    text = _COMPACT.encode(value)
    if text.isascii() or is_storable(text):
        return text
    return _COMPACT_ASCII.encode(value)


def storable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` and NUL as ``\\x00``: for messages and tracebacks."""
    if is_storable(text):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def unstorable_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON-like value the first unstorable string is (``"tags[0]"``, ``"params.a"``), or None."""
    if isinstance(value, str):
        return None if is_storable(value) else (path or "value")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_storable(key):
                return f"{path}.<key>" if path else "<key>"
            found = unstorable_path(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
