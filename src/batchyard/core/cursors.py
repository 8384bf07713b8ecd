"""One cursor codec for every paged list and the live feed: a position (sort key values, then an id) as an
opaque, URL-safe, versioned string, and back.

A cursor is ``1`` (the format's version) followed by the unpadded URL-safe base64 of a compact JSON array
``[list, value, ..., id]``. ``list`` names what the position belongs to (``jobs:-created_at``, ``items``,
``files``, ``feed``, ``error_groups``), so a cursor from another list or another sort order is refused instead
of read as a wrong position. Clients treat cursors as opaque; a new format gets a new version character.

A list may still read the format it used before this codec (``legacy``): the item list's ``s<hex seq>`` is
read, never written, so a cursor a client held across the upgrade keeps working.

Decoding is strict, because cursors come back from clients: anything that is not exactly what :meth:`encode`
makes for that list (bad base64, another encoding of the same bytes, bad JSON, a value of the wrong type, out of
the column's range, not finite, an id with other characters) raises :class:`~batchyard.errors.InvalidRequest`
naming the parameter: a 400 to the client, never a value the database would choke on.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from batchyard.errors import InvalidRequest

VERSION = "1"
MAX_CURSOR_CHARS = 400
# Every cursor this module makes matches; a query parameter may carry it as its OpenAPI ``pattern``.
CURSOR_PATTERN = rf"^{VERSION}[A-Za-z0-9_-]{{2,{MAX_CURSOR_CHARS - 1}}}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
MAX_BIGINT = 2**63 - 1  # the range of the integer columns positions are read from

Key = int | float | str
FieldType = Literal["int", "seq", "float", "id"]
PAGE_HINT = "pass back the next_cursor of the previous page unchanged"


@dataclass(frozen=True, slots=True)
class Legacy:
    """A list's format from before this codec, read (never written): its pattern and how to read a match."""

    pattern: str  # without anchors
    read: Callable[[re.Match[str]], tuple[Key, ...]]


@dataclass(frozen=True, slots=True)
class CursorCodec:
    """How the positions of one list are written: its name and the types of its fields, in order."""

    list_name: str
    fields: tuple[FieldType, ...]
    legacy: Legacy | None = None

    @property
    def pattern(self) -> str:
        """A regular expression every cursor of this list matches (for an OpenAPI ``pattern``)."""
        if self.legacy is None:
            return CURSOR_PATTERN
        return f"^(?:{CURSOR_PATTERN[1:-1]}|{self.legacy.pattern})$"

    def encode(self, *position: Key) -> str:
        if len(position) != len(self.fields) or not all(map(_valid, self.fields, position)):
            raise ValueError(f"not a position of {self.list_name}: {position!r}")
        text = json.dumps([self.list_name, *position], separators=(",", ":"), allow_nan=False)
        return VERSION + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def decode(self, cursor: str, *, param: str = "cursor", hint: str = PAGE_HINT) -> tuple[Key, ...]:
        """The position ``cursor`` holds, or :class:`InvalidRequest` (naming ``param``) for anything else."""
        if self.legacy is not None and isinstance(cursor, str):
            old = re.fullmatch(self.legacy.pattern, cursor)
            if old is not None:
                return self._checked(self.legacy.read(old), param, hint)
        decoded = _payload(cursor)
        if not (isinstance(decoded, list) and decoded and decoded[0] == self.list_name):
            if isinstance(decoded, list) and decoded and isinstance(decoded[0], str) and _same_list(decoded[0], self):
                raise InvalidRequest(f"this {param} belongs to a different sort order", param=param)
            raise _invalid(param, hint)
        return self._checked(tuple(decoded[1:]), param, hint)

    def _checked(self, position: tuple[Key, ...], param: str, hint: str) -> tuple[Key, ...]:
        if len(position) != len(self.fields) or not all(map(_valid, self.fields, position)):
            raise _invalid(param, hint)
        return position


def _payload(cursor: object) -> object:
    """The JSON value inside a well-formed cursor, or None."""
    if not (isinstance(cursor, str) and _CURSOR.fullmatch(cursor)):
        return None
    body = cursor[len(VERSION) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != body:  # one cursor per position
            return None
        return json.loads(raw.decode(), parse_constant=_no_constant)
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a position")


def _valid(field: FieldType, value: object) -> bool:
    if field == "int":
        return isinstance(value, int) and not isinstance(value, bool) and -MAX_BIGINT <= value <= MAX_BIGINT
    if field == "seq":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_BIGINT
    if field == "float":
        return isinstance(value, float) and math.isfinite(value)
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _same_list(name: str, codec: CursorCodec) -> bool:
    """A cursor of the same list under another sort order (``jobs:priority`` given to ``jobs:-total``)."""
    return ":" in codec.list_name and name.partition(":")[0] == codec.list_name.partition(":")[0]


def _invalid(param: str, hint: str) -> InvalidRequest:
    return InvalidRequest(f"invalid {param}: {hint}", param=param)


# -- the lists ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortKey:
    """A sort order of the job list: the column (and the JobRecord attribute of the same name) and its type."""

    field: str
    type: Literal["int", "float"]


# The one map of the job list's sort names (the API's ``sort``, without "-") to what they sort by.
JOB_SORT_KEYS: dict[str, SortKey] = {
    "created_at": SortKey("created_at", "float"),
    "priority": SortKey("priority", "int"),
    "updated_at": SortKey("last_activity_at", "float"),
    "total": SortKey("total", "int"),
}
JOB_SORTS = tuple(name for key in JOB_SORT_KEYS for name in (key, f"-{key}"))


def job_cursor(sort: str) -> CursorCodec:
    """Positions in the job list sorted by ``sort`` (``-`` for descending): (sort value, job id)."""
    return _JOB_CURSORS[sort]


_JOB_CURSORS = {sort: CursorCodec(f"jobs:{sort}", (JOB_SORT_KEYS[sort.lstrip("-")].type, "id")) for sort in JOB_SORTS}
# (seq,): items in input order. Before this codec: "s" and the seq in hex.
ITEM_CURSOR = CursorCodec("items", ("seq",), Legacy("s([0-9a-f]{1,15})", lambda m: (int(m[1], 16),)))
FILE_CURSOR = CursorCodec("files", ("float", "id"))  # (created_at, file id), newest first
FEED_CURSOR = CursorCodec("feed", ("float", "id"))  # (changed at, job id): the live feed's event ids
ERROR_GROUP_CURSOR = CursorCodec("error_groups", ("seq", "id"))  # (count, signature): largest groups first


def all_codecs() -> Sequence[CursorCodec]:
    return (*_JOB_CURSORS.values(), ITEM_CURSOR, FILE_CURSOR, FEED_CURSOR, ERROR_GROUP_CURSOR)
