"""Streaming reader for batch input: JSONL, CSV or a Python iterable, validated record by record.

:class:`ItemReader` turns a source into chunks of :class:`ParsedItem` without holding the input in memory;
the only state that grows with the input is the map of keys already seen (for duplicate detection). Every
problem is collected with its line number, and the whole input is rejected with
:class:`~batchyard.errors.InputInvalid` if there is any.
"""

from __future__ import annotations

import csv
import io
import json
import json.encoder
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any, BinaryIO, Literal, TypeAlias, cast

from batchyard.core.storable import is_storable, json_text
from batchyard.errors import InputInvalid, InputProblem

Format: TypeAlias = Literal["jsonl", "csv"]

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PROBLEMS = 100
MAX_KEY_CHARS = 512

_FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".csv": "csv",
}
_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = b" \t\r\n"
_READ_BUFFER_BYTES = 1 << 16
_SKIP_PIECE_BYTES = 1 << 16
_MISSING: Any = object()
_NO_FIELDS: dict[str, Any] = {}

_Readline: TypeAlias = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One accepted item, ready to store."""

    seq: int  # 0-based position among accepted items
    line: int  # 1-based line where the record starts (for Python iterables, the 1-based position)
    key: str
    payload: str  # JSON text of the item


def detect_format(path_or_name: str) -> Format | None:
    """The input format implied by a file name's extension, or None when the extension says nothing."""
    _, suffix = os.path.splitext(path_or_name)
    return _FORMAT_BY_SUFFIX.get(suffix.lower())


class _NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"{name} is not valid JSON; use null or a string instead")


_json_decode = json.JSONDecoder(parse_constant=_reject_constant).raw_decode
_encode_json_string = json.encoder.encode_basestring


class _CsvCursor:
    """Where the CSV line feed is: the last physical line read and the line the current record started on."""

    __slots__ = ("line", "record_start")

    def __init__(self, line: int) -> None:
        self.line = line
        self.record_start = 0  # 0 until the record's first line is read


@dataclass(frozen=True, slots=True)
class _CsvHeader:
    prefixes: list[str]  # each column's name as JSON text plus ":", ready to join into a payload
    key_column: int | None
    key_field: str


class ItemReader:
    """Reads items from a path, a binary file or a Python iterable, in chunks, validating as it goes.

    ``format`` applies to paths and binary files; without it a path's extension decides (see
    :func:`detect_format`), and failing that the first non-blank byte: ``{`` means JSONL, anything else CSV.
    A reader reads its source once. ``count`` is the number of valid items read so far, ``problems`` the first
    ``max_problems`` problems found and ``total_problems`` how many there were in all.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO | Iterable[Any],
        *,
        format: Format | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_problems: int = DEFAULT_MAX_PROBLEMS,
        source_name: str | None = None,
    ) -> None:
        if format not in (None, "jsonl", "csv"):
            raise ValueError(f"format must be 'jsonl', 'csv' or None, not {format!r}")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        if max_problems < 0:
            raise ValueError("max_problems must not be negative")
        self._path: str | None = None
        self._stream: BinaryIO | None = None
        self._items: Iterable[Any] | None = None
        if isinstance(source, str | os.PathLike):
            self._path = os.fspath(source)
            default_name = self._path
        elif isinstance(source, io.TextIOBase):
            raise TypeError("open the input file in binary mode ('rb'), not text mode")
        elif hasattr(source, "readline"):
            self._stream = cast(BinaryIO, source)
            name = getattr(source, "name", None)
            default_name = name if isinstance(name, str) else "input"
        elif isinstance(source, bytes | bytearray | memoryview | Mapping):
            raise TypeError(
                f"cannot read items from a {type(source).__name__}; pass a path, a binary file "
                "or an iterable of items (such as a list of dicts)"
            )
        else:
            self._items = source
            default_name = "items"
        self._position_word = "line" if self._items is None else "item"
        self._format = detect_format(self._path) if format is None and self._path is not None else format
        self._max_line_bytes = max_line_bytes
        self._max_problems = max_problems
        self._source_name = source_name or default_name
        self._seen: dict[str, int] = {}
        self._started = False
        self._chunk_size = 1
        self._batch: list[ParsedItem] = []
        self.count = 0
        self.problems: list[InputProblem] = []
        self.total_problems = 0

    def chunks(self, size: int) -> Iterator[list[ParsedItem]]:
        """Yield lists of at most ``size`` valid items, in input order, streaming.

        After the first problem no more items are yielded, but the rest of the input is still read so that
        every problem is counted. At the end, raises :class:`InputInvalid` if there was any problem, or if the
        input held no items at all.
        """
        if size < 1:
            raise ValueError("chunk size must be at least 1")
        if self._started:
            raise RuntimeError("an ItemReader reads its source once; create a new reader to read it again")
        self._started = True
        self._chunk_size = size
        return self._chunks()

    def _chunks(self) -> Iterator[list[ParsedItem]]:
        if self._items is not None:
            yield from self._python_batches(self._items)
        elif self._path is not None:
            with open(self._path, "rb", buffering=_READ_BUFFER_BYTES) as stream:
                yield from self._stream_batches(stream)
        else:
            assert self._stream is not None
            yield from self._stream_batches(self._stream)
        if self._batch and not self.total_problems:
            yield self._take_batch()
        if not self.count and not self.total_problems:
            self._problem(0, "empty_input", f"{self._source_name} contains no items; add at least one item")
        if self.total_problems:
            raise InputInvalid(self.problems, self.total_problems, source=self._source_name)

    def _stream_batches(self, stream: BinaryIO) -> Iterator[list[ParsedItem]]:
        if isinstance(stream, io.RawIOBase):
            # Unbuffered readline goes a byte at a time; detach afterwards so the caller's file stays open.
            buffered = io.BufferedReader(stream, _READ_BUFFER_BYTES)
            try:
                yield from self._stream_batches(cast(BinaryIO, buffered))
            finally:
                buffered.detach()
            return
        readline: _Readline = stream.readline
        limit = self._max_line_bytes + 2  # room for "\r\n" after a line of exactly the limit
        line = 0
        first = readline(limit)
        if first.startswith(_BOM):
            first = first[len(_BOM) :]
        while first and len(first) <= self._max_line_bytes and not first.strip(_JSON_WHITESPACE):
            line += 1
            first = readline(limit)
        if not first:
            return
        fmt = self._format or ("jsonl" if first.lstrip(_JSON_WHITESPACE).startswith(b"{") else "csv")
        lines = chain((first,), iter(partial(readline, limit), b""))
        if fmt == "jsonl":
            yield from self._jsonl_batches(lines, line, readline)
        else:
            yield from self._csv_batches(lines, line, readline)

    def _jsonl_batches(self, lines: Iterator[bytes], line: int, readline: _Readline) -> Iterator[list[ParsedItem]]:
        max_bytes = self._max_line_bytes
        admit = self._admit
        for raw in lines:
            line += 1
            if len(raw) > max_bytes and self._skip_if_too_long(raw, readline, line):
                continue
            stripped = raw.strip(_JSON_WHITESPACE)
            if not stripped:
                continue
            try:
                text = stripped.decode()
            except UnicodeDecodeError as exc:
                self._invalid_utf8(line, exc, len(raw) - len(raw.lstrip(_JSON_WHITESPACE)))
                continue
            try:
                value, end = _json_decode(text)
            except (ValueError, RecursionError) as exc:
                self._invalid_json(line, exc, raw)
                continue
            if end != len(text):
                extra_at = len(text) - len(text[end:].lstrip())
                self._invalid_json(line, json.JSONDecodeError("Extra data", text, extra_at), raw)
                continue
            if type(value) is not dict:
                self._problem(
                    line,
                    "not_an_object",
                    f'expected a JSON object such as {{"custom_id": "a", ...}}, got {_describe(value)}; '
                    "each line must be one JSON object",
                )
                continue
            raw_key = value.get("custom_id", _MISSING)
            if raw_key is not _MISSING:
                full = admit(line, raw_key, "custom_id", text)
            else:
                full = admit(line, value.get("key", _MISSING), "key", text)
            if full:
                yield self._take_batch()

    def _csv_batches(self, lines: Iterator[bytes], line: int, readline: _Readline) -> Iterator[list[ParsedItem]]:
        # The default field limit (128 KiB) is below the per-line limit; it is process-wide, so only raise it.
        if csv.field_size_limit() < self._max_line_bytes:
            csv.field_size_limit(self._max_line_bytes)
        cursor = _CsvCursor(line)
        reader = csv.reader(self._decoded_lines(lines, cursor, readline), strict=True)
        header: _CsvHeader | None = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self._problem(cursor.record_start, "invalid_csv", f"invalid CSV: {exc}; check the quoting")
                cursor.record_start = 0
                continue
            start, cursor.record_start = cursor.record_start, 0
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = self._read_header(row, start)
            elif self._admit_csv_row(header, row, start):
                yield self._take_batch()

    def _decoded_lines(self, lines: Iterator[bytes], cursor: _CsvCursor, readline: _Readline) -> Iterator[str]:
        """Each physical line decoded, line ending kept (csv needs it inside quoted fields)."""
        max_bytes = self._max_line_bytes
        for raw in lines:
            cursor.line += 1
            if len(raw) > max_bytes and self._skip_if_too_long(raw, readline, cursor.line):
                continue
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                self._invalid_utf8(cursor.line, exc, 0)
                continue
            if not cursor.record_start:
                cursor.record_start = cursor.line
            yield text

    def _admit_csv_row(self, header: _CsvHeader, row: list[str], line: int) -> bool:
        if len(row) != len(header.prefixes):
            self._problem(
                line,
                "wrong_field_count",
                f"expected {len(header.prefixes)} fields (as in the header), got {len(row)}; "
                "check for a missing or extra comma, or quote values that contain commas",
            )
            return False
        payload = "{" + ",".join(map(str.__add__, header.prefixes, map(_encode_json_string, row))) + "}"
        raw_key = _MISSING if header.key_column is None else row[header.key_column]
        return self._admit(line, raw_key, header.key_field, payload)

    def _python_batches(self, values: Iterable[Any]) -> Iterator[list[ParsedItem]]:
        admit = self._admit
        for position, value in enumerate(values, 1):
            try:
                payload = json_text(value)  # ASCII-escaped if it holds a lone surrogate, so it can be stored
            except (TypeError, ValueError, RecursionError) as exc:
                self._problem(
                    position,
                    "not_serializable",
                    f"item {position} cannot be converted to JSON: {exc}; "
                    "use only dicts, lists, strings, finite numbers, booleans and None",
                )
                continue
            fields = value if isinstance(value, dict) else _NO_FIELDS
            raw_key = fields.get("custom_id", _MISSING)
            if raw_key is not _MISSING:
                full = admit(position, raw_key, "custom_id", payload)
            else:
                full = admit(position, fields.get("key", _MISSING), "key", payload)
            if full:
                yield self._take_batch()

    def _admit(self, line: int, raw_key: Any, field: str, payload: str) -> bool:
        """Check the record's key and count it; batch it unless there was a problem (here or earlier).

        Returns whether the batch is now full.
        """
        if raw_key is _MISSING:
            key = str(line)
        elif type(raw_key) is str and 0 < len(raw_key) <= MAX_KEY_CHARS and is_storable(raw_key):
            key = raw_key
        else:
            problem = _key_problem(raw_key, field)
            if problem is not None:
                self._problem(line, *problem)
                return False
            key = str(raw_key)
        first_line = self._seen.setdefault(key, line)
        if first_line != line:
            self._problem(
                line,
                "duplicate_key",
                f"duplicate {field} {_quote(key)}, first used on {self._position_word} {first_line}; "
                "every item needs a unique key",
            )
            return False
        seq = self.count
        self.count = seq + 1
        if self.total_problems:
            return False
        batch = self._batch
        batch.append(ParsedItem(seq, line, key, payload))
        return len(batch) >= self._chunk_size

    def _take_batch(self) -> list[ParsedItem]:
        batch, self._batch = self._batch, []
        return batch

    def _read_header(self, names: list[str], line: int) -> _CsvHeader:
        self._check_header(names, line)
        key_field = "custom_id" if "custom_id" in names else "key"
        key_column = names.index(key_field) if key_field in names else None
        prefixes = [_encode_json_string(name) + ":" for name in names]
        return _CsvHeader(prefixes, key_column, key_field)

    def _check_header(self, header: list[str], line: int) -> None:
        first_column: dict[str, int] = {}
        for column, name in enumerate(header, 1):
            if not name.strip():
                self._problem(line, "invalid_header", f"column {column} of the header has no name; name it")
            elif name in first_column:
                self._problem(
                    line,
                    "invalid_header",
                    f"column {column} of the header repeats the name {_quote(name)} "
                    f"(already column {first_column[name]}); column names must be unique",
                )
            else:
                first_column[name] = column

    def _skip_if_too_long(self, raw: bytes, readline: _Readline, line: int) -> bool:
        """Whether the line is over the limit; if so, record that and skip the rest without keeping it."""
        size = len(raw)
        tail = raw[-2:]
        piece = raw
        while not piece.endswith(b"\n"):
            piece = readline(_SKIP_PIECE_BYTES)
            if not piece:
                break
            size += len(piece)
            tail = (tail + piece[-2:])[-2:]
        if tail.endswith(b"\n"):
            size -= 2 if tail == b"\r\n" else 1
        if size <= self._max_line_bytes:
            return False
        self._problem(
            line,
            "line_too_long",
            f"line is {size:,} bytes, over the limit of {self._max_line_bytes:,} bytes; make the item smaller",
        )
        return True

    def _invalid_utf8(self, line: int, exc: UnicodeDecodeError, lead: int) -> None:
        bad = exc.object[exc.start : exc.start + 1].hex()
        self._problem(
            line,
            "invalid_utf8",
            f"invalid UTF-8: byte 0x{bad} at byte offset {exc.start + lead} of the line; save the file as UTF-8",
        )

    def _invalid_json(self, line: int, exc: ValueError | RecursionError, raw: bytes) -> None:
        hint = "; each line must be one JSON object"
        if isinstance(exc, json.JSONDecodeError):
            column = exc.colno + len(raw) - len(raw.lstrip(_JSON_WHITESPACE))
            detail = f"{exc.msg} at column {column}"
            if exc.msg == "Extra data":
                hint = "; each line must hold exactly one JSON object, with nothing after it"
        elif isinstance(exc, RecursionError):
            detail = "nested too deeply"
        elif isinstance(exc, _NonFiniteNumber):
            detail, hint = str(exc), ""
        else:  # the only other ValueError: an integer past Python's digit limit
            detail, hint = "a number has too many digits", "; send very long numbers as strings"
        self._problem(line, "invalid_json", f"invalid JSON: {detail}{hint}")

    def _problem(self, line: int, code: str, message: str) -> None:
        self.total_problems += 1
        if len(self.problems) < self._max_problems:
            self.problems.append(InputProblem(line, code, message))


def _key_problem(value: object, field: str) -> tuple[str, str] | None:
    """(code, message) when ``value`` cannot be a key; None for a usable key that needs ``str()``."""
    if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
        text = str(value)
    elif isinstance(value, str):
        return "invalid_key", f"{field} is an empty string; give each item a unique non-empty {field}"
    else:
        return "invalid_key", f"{field} must be a non-empty string or an integer, got {_describe(value)}"
    if len(text) > MAX_KEY_CHARS:
        return "key_too_long", f"{field} is {len(text):,} characters long; the limit is {MAX_KEY_CHARS}"
    if not is_storable(text):
        return "invalid_key", (
            f"{field} holds a NUL character or a lone surrogate (like \\ud800), which the "
            "database cannot store; use plain text"
        )
    return None


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a JSON boolean ({str(value).lower()})"
    if value is None:
        return "JSON null"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list | tuple):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a {type(value).__name__} value"


def _quote(text: str, limit: int = 60) -> str:
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= limit else shown[: limit - 4] + '..."'
