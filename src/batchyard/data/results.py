"""Result files, written by streaming over a job's items: results.jsonl (succeeded items, and skipped ones with
their ``message``), errors.jsonl (failed items), results.csv (every item; a skipped one says why in
``error_message``) and artifacts.zip. Memory stays bounded whatever the job's size."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import tempfile
import zipfile
from array import array
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring as encode_string
from typing import IO, TYPE_CHECKING, Any

from batchyard.core.records import ItemRecord
from batchyard.data.blobs import LocalStorage, artifact_prefix, job_prefix

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.store import Store

RESULTS_JSONL = "results.jsonl"
ERRORS_JSONL = "errors.jsonl"
RESULTS_CSV = "results.csv"
ARTIFACTS_ZIP = "artifacts.zip"
RESULT_FILE_NAMES = (RESULTS_JSONL, ERRORS_JSONL, RESULTS_CSV, ARTIFACTS_ZIP)
CSV_COLUMN_SAMPLE = 1000  # result keys seen in the first results become CSV columns
CSV_MAX_RESULT_COLUMNS = 50
CSV_BASE_COLUMNS = ["key", "status", "attempts", "duration_ms", "error_type", "error_message"]


def result_line(item: ItemRecord) -> str:
    """A succeeded item's line of results.jsonl; a skipped item's adds ``message``, the reason it was skipped."""
    line: dict[str, Any] = {
        "key": item.key,
        "seq": item.seq,
        "status": item.status,
        "attempts": item.attempts,
        "result": item.result,
        "usage": item.usage,
    }
    if item.status == "skipped":
        line["message"] = (item.error or {}).get("message")
    return json.dumps(line, ensure_ascii=False) + "\n"


def error_line(item: ItemRecord) -> str:
    return (
        json.dumps(
            {"key": item.key, "seq": item.seq, "status": item.status, "attempts": item.attempts, "error": item.error},
            ensure_ascii=False,
        )
        + "\n"
    )


def _raw_result_line(row: tuple[Any, ...]) -> str:
    # Same shape as result_line, built from the stored JSON text without decoding it again.
    seq, key, status, attempts, result, _error, _started, _finished, usage = row
    return (
        f'{{"key": {encode_string(key)}, "seq": {seq}, "status": "{status}", "attempts": {attempts}, '
        f'"result": {result or "null"}, "usage": {usage or "null"}}}\n'
    )


def _raw_skipped_line(row: tuple[Any, ...]) -> str:
    seq, key, status, attempts, _result, error, _started, _finished, usage = row
    message = json.loads(error).get("message") if error else None
    return (
        f'{{"key": {encode_string(key)}, "seq": {seq}, "status": "{status}", "attempts": {attempts}, '
        f'"result": null, "usage": {usage or "null"}, "message": {json.dumps(message, ensure_ascii=False)}}}\n'
    )


def _raw_error_line(row: tuple[Any, ...]) -> str:
    seq, key, status, attempts, _result, error, *_ = row
    return (
        f'{{"key": {encode_string(key)}, "seq": {seq}, "status": "{status}", "attempts": {attempts}, '
        f'"error": {error or "null"}}}\n'
    )


class CsvWriter:
    """Writes one row per item; dict results spread into ``result.<name>`` columns chosen from early rows.

    The last column, ``result``, holds what those columns do not: a result that is not a JSON object, or the
    keys beyond the spread ones. It is left out when it would be empty in every row (every result null or
    absent, or every result an object whose keys all have columns of their own), and kept as soon as one row
    has something in it. The first :data:`CSV_COLUMN_SAMPLE` rows decide when they are all the rows or when one
    of them needs it; past them, with ``spool`` the rows wait in a temporary file until a row needs the
    column or the last row is in (bounded memory either way; the spooled rows are copied once), and without it
    the column is kept (a partial download streams at once).
    """

    def __init__(self, out: IO[str], *, spool: bool = False) -> None:
        self._out = out
        self._writer = csv.writer(out, lineterminator="\n")
        self._pending: list[tuple[Any, ...]] = []
        self._columns: list[str] | None = None
        self._keep_rest = True
        self._spool_allowed = spool
        self._spool: IO[str] | None = None  # rows, each with an empty last cell, while the column is undecided
        self._spool_lengths = array("Q")
        self._line = io.StringIO()
        self._line_writer = csv.writer(self._line, lineterminator="\n")

    def add(self, row: tuple[Any, ...]) -> None:
        if self._columns is None:
            self._pending.append(row)
            if len(self._pending) >= CSV_COLUMN_SAMPLE:
                self._start(last=False)
        elif self._spool is not None:
            self._spool_row(row)
        else:
            self._write(row)

    def close(self) -> None:
        if self._columns is None:
            self._start(last=True)
        elif self._spool is not None:
            self._unspool(keep_rest=False)

    def _start(self, *, last: bool) -> None:
        columns: dict[str, None] = {}
        for row in self._pending:
            result = row[4]
            if result and result[0] == "{":
                for name in json.loads(result):
                    if len(columns) < CSV_MAX_RESULT_COLUMNS:
                        columns.setdefault(str(name))
        self._columns = list(columns)
        cells = [self._cells(row) for row in self._pending]
        self._pending = []
        needed = any(c[-1] != "" for c in cells)
        if needed or last or not self._spool_allowed:
            self._keep_rest = needed or not last
            self._header()
            for c in cells:
                self._writer.writerow(c if self._keep_rest else c[:-1])
            return
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115 - _unspool closes it
        for c in cells:
            self._spool_cells(c)

    def _header(self) -> None:
        assert self._columns is not None
        names = [*CSV_BASE_COLUMNS, *(f"result.{c}" for c in self._columns)]
        self._writer.writerow([csv_cell(c) for c in (*names, "result")] if self._keep_rest else names)

    def _write(self, row: tuple[Any, ...]) -> None:
        cells = self._cells(row)
        self._writer.writerow(cells if self._keep_rest else cells[:-1])

    def _spool_row(self, row: tuple[Any, ...]) -> None:
        cells = self._cells(row)
        if cells[-1] != "":
            self._unspool(keep_rest=True)
            self._writer.writerow(cells)
        else:
            self._spool_cells(cells)

    def _spool_cells(self, cells: list[Any]) -> None:
        assert self._spool is not None
        line = self._line
        line.seek(0)
        line.truncate()
        self._line_writer.writerow(cells)
        text = line.getvalue()
        self._spool.write(text)
        self._spool_lengths.append(len(text))  # in characters, as the text file's read() counts them

    def _unspool(self, *, keep_rest: bool) -> None:
        """Write the header and the spooled rows: as they are, or without their (empty) last cell."""
        spool = self._spool
        assert spool is not None
        self._spool = None
        self._keep_rest = keep_rest
        self._header()
        spool.seek(0)
        with spool:
            if keep_rest:
                while chunk := spool.read(1 << 20):
                    self._out.write(chunk)
            else:  # each row ends with ",\n" (its empty last cell): write it with "\n" only
                for length in self._spool_lengths:
                    self._out.write(spool.read(length)[:-2] + "\n")
        self._spool_lengths = array("Q")

    def _cells(self, row: tuple[Any, ...]) -> list[Any]:
        columns = self._columns
        assert columns is not None
        _seq, key, status, attempts, result, error, started, finished, _usage = row
        duration = f"{max(0.0, finished - started) * 1000:.1f}" if started is not None and finished else ""
        error_type = error_message = ""
        if error:
            parsed_error = json.loads(error)
            error_type, error_message = parsed_error.get("type", ""), parsed_error.get("message", "")
        rest: str = result or ""
        spread: list[str] = []
        if columns:
            value = json.loads(result) if result and result[0] == "{" else None
            if isinstance(value, dict):
                spread = [_cell(value.get(c)) for c in columns]
                extra = {k: v for k, v in value.items() if k not in columns}
                rest = json.dumps(extra, ensure_ascii=False) if extra else ""
            else:
                spread = [""] * len(columns)
        return [csv_cell(cell) for cell in (key, status, attempts, duration, error_type, error_message, *spread, rest)]


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """One cell of any CSV Batchyard writes, as a spreadsheet should show it: text that a spreadsheet would run
    as a formula (``=cmd|...``, ``@SUM(1)``, ``+1+1``: CSV injection) gets a leading ``'``, a plain number such as
    ``-5`` is left alone, and text UTF-8 cannot encode (a lone surrogate) is escaped as ``\\udXXX`` instead of
    failing the whole file. None is an empty cell; numbers stay numbers."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


KEEPALIVE_ROWS = 5000


def _nothing() -> None:
    return None


def elsewhere_message(job_id: str, name: str, meta: dict[str, Any], looked_in: str | None = None) -> str:
    """Why a result file the job lists is not in this process's storage, and where it is.

    With local storage, result files and artifacts live in the data directory of the process that wrote them;
    ``meta`` (the job's ``result_files`` entry) names its host. ``looked_in`` is this process's directory, for
    messages that stay on this machine (an API answer never names server paths)."""
    host = meta.get("host")
    here = socket.gethostname()
    where = f"on host {host}" if host and host != here else "on this host" if host else "by another process"
    missing = f" (not in {looked_in})" if looked_in else ""
    return (
        f"{name} of job {job_id} was written {where}, into the data directory of the process that wrote it"
        f"{missing}. With local storage every server and worker must share one data directory "
        "(BATCHYARD_DATA_DIR on a shared filesystem); copy the file from there meanwhile"
    )


def no_artifacts_message(job_id: str, result_files: dict[str, Any]) -> str:
    """A finished job without artifacts.zip: none were found where its result files were written."""
    hosts = {meta.get("host") for meta in result_files.values() if isinstance(meta, dict)} - {None}
    writer = f" (on host {', '.join(sorted(map(str, hosts)))})" if hosts else ""
    return (
        f"job {job_id} has no artifacts: its handler saved none (ctx.save_artifact) that the process writing its "
        f"result files{writer} could see. Artifacts saved by a worker on another machine stay in that machine's "
        "data directory: with local storage every server and worker must share one (BATCHYARD_DATA_DIR)"
    )


def write_result_files(
    store: Store, storage: LocalStorage, job_id: str, keepalive: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Write every result file of a job in one pass over its items; returns {name: {bytes, rows}}.

    ``keepalive`` is called every few thousand rows and between artifacts (to extend the writer's lease)."""
    keep = keepalive or _nothing
    prefix = job_prefix(job_id)
    counts = {RESULTS_JSONL: 0, ERRORS_JSONL: 0, RESULTS_CSV: 0}
    with (
        storage.open_write(f"{prefix}/{RESULTS_JSONL}") as rf,
        storage.open_write(f"{prefix}/{ERRORS_JSONL}") as ef,
        storage.open_write(f"{prefix}/{RESULTS_CSV}") as cf,
    ):
        results = io.TextIOWrapper(rf, encoding="utf-8", newline="")
        errors = io.TextIOWrapper(ef, encoding="utf-8", newline="")
        table = io.TextIOWrapper(cf, encoding="utf-8", newline="")
        csv_writer = CsvWriter(table, spool=True)
        for row in store.items.iter_item_rows(job_id):
            status = row[2]
            if status == "succeeded":
                results.write(_raw_result_line(row))
                counts[RESULTS_JSONL] += 1
            elif status == "skipped":
                results.write(_raw_skipped_line(row))
                counts[RESULTS_JSONL] += 1
            elif status == "failed":
                errors.write(_raw_error_line(row))
                counts[ERRORS_JSONL] += 1
            csv_writer.add(row)
            counts[RESULTS_CSV] += 1
            if not counts[RESULTS_CSV] % KEEPALIVE_ROWS:
                keep()
        csv_writer.close()
        for wrapper in (results, errors, table):
            wrapper.flush()
            wrapper.detach()
    files: dict[str, Any] = {
        name: {"bytes": storage.size(f"{prefix}/{name}"), "rows": rows} for name, rows in counts.items()
    }
    artifacts = storage.list(artifact_prefix(job_id))
    if artifacts:
        write_artifacts_zip(storage, job_id, artifacts, keep)
        files[ARTIFACTS_ZIP] = {"bytes": storage.size(f"{prefix}/{ARTIFACTS_ZIP}"), "rows": len(artifacts)}
    return files


def write_artifacts_zip(
    storage: LocalStorage, job_id: str, names: list[str], keepalive: Callable[[], None] | None = None
) -> None:
    base = artifact_prefix(job_id) + "/"
    keep = keepalive or _nothing
    with (
        storage.open_write(f"{job_prefix(job_id)}/{ARTIFACTS_ZIP}") as out,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name in names:
            keep()
            with storage.open_read(name) as src, archive.open(name[len(base) :], "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)


def iter_partial_lines(store: Store, job_id: str, name: str) -> Iterator[str]:
    """Lines of a result file built from the items as they are now (for a job still running)."""
    if name == RESULTS_JSONL:
        yield from (result_line(i) for i in store.items.iter_items(job_id, statuses=["succeeded", "skipped"]))
    elif name == ERRORS_JSONL:
        yield from (error_line(i) for i in store.items.iter_items(job_id, statuses=["failed"]))
    else:
        raise ValueError(f"no partial form of {name}")
