"""Waiting in tests: for something the test can see, with a deadline that names what never happened.

A test never sleeps to let something happen (a worker to notice a pause, a lease to run out, a server to start):
it polls what it is waiting for. It sleeps only where time passing is what it tests: a handler that is slow on
purpose, a window in which nothing may happen, a clock that must move for the rule under test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, what: str, timeout: float = 30.0, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something true, and return that. After ``timeout`` seconds, fail
    saying what never happened. A predicate may also fail by itself (a process that died while waited on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
