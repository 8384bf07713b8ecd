"""Failed items in the worker's log: each of the first ones, then one summary line per interval, per job."""

from __future__ import annotations

import json
import logging

import pytest

from batchyard.worker.failures import FailureLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "batchyard.worker" and r.levelno == logging.WARNING]
    caplog.clear()
    return lines


def test_the_first_failures_of_a_job_are_logged_one_by_one_then_summarised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "batchyard.worker")
    clock = Clock()
    failures = FailureLog(first_per_job=3, interval_seconds=60, clock=clock)

    for i in range(3):
        failures.failed("job_a", f"k{i}", "ValueError", None, 1)
    assert messages(caplog) == [
        "job job_a: item 'k0' failed: ValueError, attempt 1",
        "job job_a: item 'k1' failed: ValueError, attempt 1",
        "job job_a: item 'k2' failed: ValueError, attempt 1",
        "job job_a: 3 items failed; further failures of this job are counted in one line every 60s",
    ]

    for i in range(3, 70):
        clock.now += 1
        failures.failed("job_a", f"k{i}", "ItemError", "flaky", 3)
    failures.failed("job_b", "other", "Timeout", "timeout", 2)  # another job has a budget of its own
    assert messages(caplog) == [
        "job job_a: 60 more items failed in the last 60s (63 in all; latest item 'k62': ItemError (flaky))",
        "job job_b: item 'other' failed: Timeout (timeout), attempt 2",
    ]

    clock.now += 10
    failures.flush()  # not due yet
    assert messages(caplog) == []
    failures.flush(due_only=False)  # the worker stops: nothing counted stays untold
    assert messages(caplog) == [
        "job job_a: 7 more items failed in the last 17s (70 in all; latest item 'k69': ItemError (flaky))"
    ]
    failures.flush(due_only=False)
    assert messages(caplog) == []


def test_a_logged_failure_carries_no_message_and_a_bounded_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "batchyard.worker")
    error = json.dumps({"type": "KeyError", "message": "token sk-secret not accepted", "attempt": 1})

    FailureLog().failed_item("job_a", "x" * 500, error, 1)

    [line] = messages(caplog)
    assert "sk-secret" not in line
    assert "KeyError" in line
    assert len(line) < 200
