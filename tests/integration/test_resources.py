"""Worker resources (``@app.resource``) on SQLite and PostgreSQL: one per worker, shared, retried, cleaned up."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from batchyard import Batchyard, ItemContext
from batchyard.errors import ConfigError

from ..waits import wait_until
from .helpers import assert_counters_match_items, running_worker, wait_finished


def test_one_resource_per_worker_shared_by_sync_and_async_items(app: Batchyard) -> None:
    setups: list[float] = []
    cleanups: list[int] = []
    uses = {"n": 0}
    lock = threading.Lock()

    @app.resource("model")
    def model() -> Iterator[dict[str, Any]]:
        setups.append(time.monotonic())
        time.sleep(0.3)  # slow to start: the first items all ask for it while it starts
        yield {"weights": 42}
        cleanups.append(uses["n"])

    @app.handler("predict_async", concurrency=32)
    async def predict_async(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        weights = ctx.resources["model"]["weights"]
        with lock:
            uses["n"] += 1
        await asyncio.sleep(0.001)
        return {"y": item["n"] * weights}

    @app.handler("predict_sync", concurrency=8)
    def predict_sync(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        weights = ctx.resources["model"]["weights"]
        with lock:
            uses["n"] += 1
        return {"y": item["n"] * weights}

    jobs = [app.submit(name, [{"n": i} for i in range(50)]) for name in ("predict_async", "predict_sync")]
    with running_worker(app) as runner:
        views = [wait_finished(app, job.id) for job in jobs]
        assert cleanups == []  # up while the worker runs
        assert runner.worker.resources.starts == 1

    assert [(v.job.status, v.job.succeeded) for v in views] == [("completed", 50), ("completed", 50)]
    assert len(setups) == 1, "100 items, two handlers, one worker: one setup"
    assert cleanups == [100], "cleaned up once, when the worker stopped, after every item used it"
    assert sorted(r.result["y"] for r in jobs[1].results()) == [42 * i for i in range(50)]
    for job in jobs:
        assert_counters_match_items(app, job.id)


def test_a_declared_resource_is_ready_before_the_handler_and_outside_its_timeout(app: Batchyard) -> None:
    started: list[str] = []

    @app.resource("browser")
    async def browser() -> AsyncIterator[str]:
        await asyncio.sleep(0.6)  # longer than the handler's timeout
        started.append("browser")
        yield "chromium"

    calls = {"n": 0}

    @app.handler("render", concurrency=4, timeout=0.4, resources=["browser"])
    async def render(item: dict[str, Any], ctx: ItemContext) -> str:
        calls["n"] += 1  # never entered before the browser is up: no repeated calls
        return f"{ctx.resources['browser']}:{item['n']}"

    job = app.submit("render", [{"n": i} for i in range(8)])
    view = job.wait(timeout=20)  # the in-process worker of wait() cleans up too

    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 8, 0)
    assert started == ["browser"] and calls["n"] == 8
    assert all(item.attempts == 1 for item in job.items())


def test_an_async_handler_reading_a_resource_not_up_yet_runs_again_once_it_is(app: Batchyard) -> None:
    entered = {"n": 0}

    @app.resource("pool")
    async def pool() -> AsyncIterator[list[int]]:
        await asyncio.sleep(0.2)
        yield [1, 2, 3]

    @app.handler("lazy", concurrency=16)
    async def lazy(item: dict[str, Any], ctx: ItemContext) -> int:
        entered["n"] += 1
        pool: list[int] = ctx.resources["pool"]
        return sum(pool) + int(item["n"])

    job = app.submit("lazy", [{"n": i} for i in range(40)])
    view = job.wait(timeout=20)

    assert (view.job.status, view.job.succeeded) == ("completed", 40)
    assert [r.result for r in job.results()] == [6 + i for i in range(40)]
    assert all(item.attempts == 1 for item in job.items()), "waiting for a resource is not a failed attempt"
    assert 40 <= entered["n"] <= 40 + 16  # at most the items that came while it started ran twice


def test_a_resource_that_fails_to_start_is_retried_with_backoff_and_the_job_completes(
    app: Batchyard, caplog: pytest.LogCaptureFixture
) -> None:
    app.settings = app.settings.model_copy(update={"resource_retry_base_seconds": 0.3, "resource_retry_max_seconds": 5})
    tries: list[float] = []

    @app.resource("upstream")
    def upstream() -> Iterator[str]:
        tries.append(time.monotonic())
        if len(tries) <= 2:
            raise ConnectionRefusedError(f"display :99 not there (try {len(tries)})")
        yield "connected"

    @app.handler("call", concurrency=8, max_attempts=6)
    def call(item: dict[str, Any], ctx: ItemContext) -> str:
        return f"{ctx.resources['upstream']} {item['n']}"

    job = app.submit("call", [{"n": i} for i in range(20)])
    with caplog.at_level(logging.ERROR, logger="batchyard.worker"), running_worker(app):
        view = wait_finished(app, job.id)

    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 20, 0)
    assert len(tries) == 3, "two failed starts and one that worked; not one start per item"
    # backoff with jitter: the n-th wait is drawn from [base * 2**(n-1) / 2, base * 2**(n-1)]
    assert tries[1] - tries[0] >= 0.15 - 0.01
    assert tries[2] - tries[1] >= 0.3 - 0.01
    retried = [item for item in job.items() if item.attempts > 1]
    assert retried, "the items that came while it was down failed and were retried"
    failures = [r for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures), "each failed start logged with its traceback"
    assert_counters_match_items(app, job.id)


def test_items_fail_with_a_clear_error_while_their_resource_is_down(app: Batchyard) -> None:
    app.settings = app.settings.model_copy(update={"resource_retry_base_seconds": 60})

    @app.resource("gpu")
    async def gpu() -> AsyncIterator[str]:
        raise RuntimeError("CUDA out of memory")
        yield "never"

    @app.handler("infer", concurrency=4, max_attempts=1)
    async def infer(item: dict[str, Any], ctx: ItemContext) -> str:
        return str(ctx.resources["gpu"])

    job = app.submit("infer", [{"n": i} for i in range(6)])
    with running_worker(app) as runner:
        view = wait_finished(app, job.id)
        assert runner.worker.resources.starts == 1, "down: its next try waits for the backoff, not the next item"

    assert (view.job.status, view.job.failed) == ("completed", 6)
    errors = [item.error for item in job.errors()]
    assert all(e is not None and e["code"] == "resource_unavailable" and e["retryable"] for e in errors)
    assert errors[0] is not None
    assert "resource 'gpu' is unavailable: it failed to start: RuntimeError: CUDA out of memory" in errors[0]["message"]


def test_cleanup_errors_are_logged_with_their_traceback_and_the_others_still_run(
    app: Batchyard, caplog: pytest.LogCaptureFixture
) -> None:
    closed: list[str] = []

    @app.resource("first")
    def first() -> Iterator[str]:
        yield "1"
        closed.append("first")

    @app.resource("second")
    async def second() -> AsyncIterator[str]:
        yield "2"
        raise OSError("socket already closed")

    @app.handler("both", concurrency=2, resources=["first", "second"])
    def both(item: dict[str, Any], ctx: ItemContext) -> str:
        return str(ctx.resources["first"]) + str(ctx.resources["second"])

    job = app.submit("both", [{"n": 1}])
    with caplog.at_level(logging.INFO, logger="batchyard.worker"), running_worker(app):
        wait_finished(app, job.id)

    assert [r.result for r in job.results()] == ["12"]
    assert closed == ["first"]
    failed = [r for r in caplog.records if "its cleanup failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR and failed[0].exc_info is not None
    assert "'second'" in failed[0].getMessage()


def test_unknown_resources_are_clear_errors(app: Batchyard) -> None:
    @app.handler("typo", max_attempts=3)
    def typo(item: dict[str, Any], ctx: ItemContext) -> Any:
        return ctx.resources["browsr"]

    job = app.submit("typo", [{"n": 1}])
    view = job.wait(timeout=20)
    assert view.job.failed == 1
    error = next(job.errors()).error
    assert error is not None and error["code"] == "unknown_resource" and error["attempt"] == 1  # not retried
    assert "no resource named 'browsr'" in error["message"]

    @app.handler("declares", resources=["missing"])
    def declares(item: dict[str, Any], ctx: ItemContext) -> None:
        return None

    with pytest.raises(ConfigError, match="handler 'declares' needs resource 'missing'"):
        app.worker(handlers=["declares"])
    with pytest.raises(ValueError, match="list of resource names"):
        app.handler("bad", resources="missing")(declares)


def test_a_stopping_worker_waits_for_a_start_in_progress_then_cleans_it_up(app: Batchyard) -> None:
    events: list[str] = []
    gate = threading.Event()

    @app.resource("slow")
    def slow() -> Iterator[str]:
        events.append("starting")
        gate.wait(10)
        yield "up"
        events.append("closed")

    @app.handler("needs_slow", concurrency=2)
    def needs_slow(item: dict[str, Any], ctx: ItemContext) -> str:
        return str(ctx.resources["slow"])

    job = app.submit("needs_slow", [{"n": 1}])
    with running_worker(app) as runner:
        wait_until(lambda: events == ["starting"], what="the resource to start starting")
        runner.worker.request_stop()
        gate.set()
    # the with block joined the worker: its item finished, then the resource was cleaned up
    assert events == ["starting", "closed"]
    assert app.service.get(job.id).job.succeeded == 1
