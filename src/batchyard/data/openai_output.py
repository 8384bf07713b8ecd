"""Writing a finished OpenAI batch's output and error files, in one streaming pass over its items.

Output line (a request that succeeded)::

    {"id": "batch_req_...", "custom_id": "...", "response": {"status_code": 200, "request_id": "...", "body": {...}},
     "error": null}

Error line: an upstream's final HTTP error keeps its answer (``response`` with its status code and body, ``error``
null, as OpenAI writes them); a failure without an HTTP answer (timeout, connection refused, no upstream for the
model) has ``response: null`` and ``error: {code, message}``; a request never executed because the batch was
cancelled or expired is ``batch_cancelled`` / ``batch_expired``. Lines follow the input order here, but clients
must join on ``custom_id`` (OpenAI promises no order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring as encode_string
from typing import TYPE_CHECKING, Any, BinaryIO

from batchyard.core.records import decode_json
from batchyard.data.blobs import LocalStorage

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.store import Store

KEEPALIVE_ROWS = 5000
BATCH_CANCELLED = "batch_cancelled"
BATCH_EXPIRED = "batch_expired"
_UNEXECUTED_MESSAGES = {
    BATCH_CANCELLED: "This request was not executed because the batch was cancelled.",
    BATCH_EXPIRED: "This request could not be executed before the completion window expired.",
}


@dataclass(frozen=True, slots=True)
class WrittenFile:
    name: str  # where it is in storage
    rows: int
    bytes: int
    sha256: str


def request_id(job_id: str, seq: int) -> str:
    """The ``id`` of an output line: stable for a job's request, so a rewritten file says the same."""
    return f"batch_req_{job_id.removeprefix('job_')}{seq:08x}"


def output_line(job_id: str, row: tuple[Any, ...]) -> str:
    """A succeeded item's line; its stored result is the response object ``{status_code, request_id, body}``."""
    seq, key, _status, _attempts, result, *_ = row
    return (
        f'{{"id":"{request_id(job_id, seq)}","custom_id":{encode_string(key)},'
        f'"response":{result or "null"},"error":null}}\n'
    )


def error_line(job_id: str, row: tuple[Any, ...], unexecuted_code: str) -> str:
    """A failed or never executed item's line (see the module docstring)."""
    seq, key, status, _attempts, _result, error_text, *_ = row
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None
    if status == "cancelled":
        error = {"code": unexecuted_code, "message": _UNEXECUTED_MESSAGES[unexecuted_code]}
    else:
        stored = decode_json(error_text) if error_text else {}
        detail = stored.get("detail") if isinstance(stored, dict) else None
        if isinstance(detail, dict) and isinstance(detail.get("status_code"), int):
            response = {
                "status_code": detail["status_code"],
                "request_id": str(detail.get("request_id") or ""),
                "body": detail.get("body"),
            }
            error = None
        else:
            error = {
                "code": str(stored.get("code") or "request_failed"),
                "message": str(stored.get("message") or "the request failed"),
            }
    line = {
        "id": request_id(job_id, seq),
        "custom_id": key,
        "response": response,
        "error": error,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self.rows = 0
        self._buffer: list[str] = []
        self._buffered = 0

    def add(self, line: str) -> None:
        self._buffer.append(line)
        self._buffered += len(line)
        self.rows += 1
        if self._buffered >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = "".join(self._buffer).encode("utf-8")
            self.out.write(data)
            self.hash.update(data)
            self.size += len(data)
            self._buffer, self._buffered = [], 0


def write_batch_files(
    store: Store,
    storage: LocalStorage,
    job_id: str,
    *,
    output_name: str,
    error_name: str,
    unexecuted_code: str,
    keepalive: Callable[[], None] | None = None,
) -> tuple[WrittenFile | None, WrittenFile | None]:
    """Write the output and error files of job ``job_id`` to ``output_name`` / ``error_name`` in storage.

    Returns what was written of each, or None for a file that would have no line (it is not kept)."""
    written: list[WrittenFile | None] = []
    with storage.open_write(output_name) as out_file, storage.open_write(error_name) as err_file:
        out, err = _HashingWriter(out_file), _HashingWriter(err_file)
        for n, row in enumerate(store.items.iter_item_rows(job_id), 1):
            status = row[2]
            if status == "succeeded":
                out.add(output_line(job_id, row))
            elif status in ("failed", "cancelled"):
                err.add(error_line(job_id, row, unexecuted_code))
            if keepalive is not None and not n % KEEPALIVE_ROWS:
                keepalive()
        out.flush()
        err.flush()
    for name, writer in ((output_name, out), (error_name, err)):
        if writer.rows:
            written.append(WrittenFile(name, writer.rows, writer.size, writer.hash.hexdigest()))
        else:
            storage.delete(name)
            written.append(None)
    return written[0], written[1]
