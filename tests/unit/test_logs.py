"""batchyard/logs.py: JSON lines with the job and item a record is about, and no secrets."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

from batchyard.logs import done_item, json_handler, redact, running_item


@dataclass
class Item:
    job_id: str
    key: str
    seq: int


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger("batchyard.test_logs")
    logger.handlers[:] = [json_handler(stream)]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_the_ids_given_in_extra() -> None:
    logger, stream = capture()
    logger.warning("job %s: item %r failed\nsecond line", "job_1", "k", extra={"job_id": "job_1", "item_key": "k"})
    logger.info("no ids", extra={"password": "hunter2", "worker_id": "w1"})
    first, second = lines(stream)
    assert first["message"] == "job job_1: item 'k' failed\nsecond line"
    assert (first["level"], first["logger"], first["job_id"], first["item_key"]) == (
        "warning",
        "batchyard.test_logs",
        "job_1",
        "k",
    )
    assert str(first["time"]).endswith("+00:00")
    assert "job_id" not in second and second["worker_id"] == "w1"
    assert "password" not in second and "hunter2" not in stream.getvalue()  # only known fields from extra=


def test_inside_a_running_item_records_carry_its_job_and_item() -> None:
    logger, stream = capture()
    token = running_item(Item("job_9", "row-3", 3))
    try:
        logger.warning("from a handler")
    finally:
        done_item(token)
    logger.warning("after it")
    inside, after = lines(stream)
    assert (inside["job_id"], inside["item_key"], inside["item_seq"]) == ("job_9", "row-3", 3)
    assert "job_id" not in after


def test_secrets_are_masked_in_messages_and_tracebacks() -> None:
    logger, stream = capture()
    key = "by_" + "A1b2C3d4" * 5
    try:
        raise RuntimeError(f"upstream said no to {key}")
    except RuntimeError:
        logger.exception("GET /login?token=abcdef123456&x=1 with Authorization: Bearer sk-live-123")
    (record,) = lines(stream)
    text = stream.getvalue()
    assert key not in text and "abcdef123456" not in text and "sk-live-123" not in text
    assert "token=***" in str(record["message"]) and "Bearer ***" in str(record["message"])
    assert "RuntimeError: upstream said no to by_***" in str(record["exception"])
    assert redact("nothing secret here") == "nothing secret here"
