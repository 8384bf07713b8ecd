"""Logs: Rich text on a terminal, or one JSON object per line (``BATCHYARD_LOG_FORMAT=json``) for log shippers.

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the ``exception`` traceback when
there is one, and what is known of the work: ``job_id``, ``item_key`` and ``item_seq``. They come from the log call's
``extra=`` (``log.warning(..., extra={"job_id": job_id})``) or, inside a handler, from the item being run: the worker
marks it in a context variable (:func:`running_item`), so a handler's own ``logging`` calls carry its job and item
without passing anything. Only the fields in :data:`EXTRA_FIELDS` are taken from ``extra=``; API keys, bearer
tokens and login tokens are masked in messages and tracebacks (item payloads are never logged by Batchyard).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
from typing import Any, Protocol

LOG_FORMATS = ("text", "json")
# Record attributes a JSON line takes from ``extra=``: ids and counts, nothing a caller could put a secret in.
EXTRA_FIELDS = ("job_id", "item_key", "item_seq", "worker_id", "handler", "attempt", "error_type", "error_code")
_SECRETS = re.compile(r"(\bby_)[A-Za-z0-9_-]{8,}|(\bBearer\s+)\S+|((?:token|api_key|key)=)[^&\s\"']+", re.IGNORECASE)


class RunningItem(Protocol):
    job_id: str
    key: str
    seq: int


_running: contextvars.ContextVar[RunningItem | None] = contextvars.ContextVar("batchyard_running_item", default=None)


def running_item(item: RunningItem | None) -> contextvars.Token[RunningItem | None]:
    """Mark the item this thread or task runs now (the worker, around a handler call); undo with :func:`done_item`.
    One context-variable write: costs about what a dict assignment does."""
    return _running.set(item)


def done_item(token: contextvars.Token[RunningItem | None]) -> None:
    _running.reset(token)


def redact(text: str) -> str:
    """Mask API keys (``by_...``), bearer tokens and ``token=``/``key=`` query values."""
    return _SECRETS.sub(lambda m: (m[1] or m[2] or m[3]) + "***", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        item = _running.get()
        if item is not None:
            data.update(job_id=item.job_id, item_key=item.key, item_seq=item.seq)
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exception"] = redact(record.exc_text)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False, default=str)


def json_handler(stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler
