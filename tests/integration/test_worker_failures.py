"""The worker against what should never stop it: text the database cannot store, an outcome that cannot be
written, and a failure of one of its own tasks (which must stop it loudly, never leave it half alive)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from batchyard import Batchyard, ItemContext
from batchyard.core.records import CompletionReport, Outcome
from batchyard.errors import WorkerCrashed
from batchyard.worker.executor import WorkItem

from .helpers import assert_counters_match_items, running_worker, wait_finished


def test_text_the_database_cannot_store_fails_nothing_and_stops_nobody(app: Batchyard, tmp_path: Path) -> None:
    """A lone surrogate is valid JSON (once it took the worker down for every user, again after each restart)."""

    @app.handler("odd")
    def odd(item: dict[str, Any], ctx: ItemContext) -> Any:
        if item.get("raise"):
            raise ValueError("bad \ud800 value \x00 here")
        if item.get("usage"):
            ctx.add_usage(**{"\ud800": 1})
        return item

    source = tmp_path / "odd.jsonl"
    source.write_text(
        '{"custom_id": "a", "x": "\\ud800"}\n{"custom_id": "b", "raise": true}\n'
        '{"custom_id": "c", "usage": true}\n{"custom_id": "d", "x": "fine \u00e9"}\n'
    )
    job = app.submit("odd", str(source), max_attempts=1)
    with running_worker(app):
        view = wait_finished(app, job.id, timeout=30)
        after = app.submit("echo", [{"n": 1}])  # the worker is still alive for everyone else
        assert wait_finished(app, after.id, timeout=30).job.succeeded == 1
    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 2, 2)
    # Stored as the escape "\ud800"; read back for showing, the lone surrogate becomes U+FFFD.
    assert app.store.items.get_item(job.id, "a").result == {"custom_id": "a", "x": "\ufffd"}
    assert app.store.items.get_item(job.id, "d").result == {"custom_id": "d", "x": "fine \u00e9"}
    raised = app.store.items.get_item(job.id, "b").error
    assert raised is not None and raised["message"] == "bad \\ud800 value \\x00 here"
    usage = app.store.items.get_item(job.id, "c").error
    assert usage is not None and usage["type"] == "ValueError" and "plain text" in usage["message"]
    assert view.job.result_files["results.jsonl"]["rows"] == 2
    assert_counters_match_items(app, job.id)


def test_an_outcome_that_cannot_be_written_fails_its_item_only(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = app.store.claims.complete_items

    def refuses_item_7(outcomes: Sequence[Outcome], finished_tokens: Sequence[str] = ()) -> CompletionReport:
        if any(o.seq == 7 and o.kind == "succeeded" for o in outcomes):
            raise RuntimeError("the driver refused this row")
        return real(outcomes, finished_tokens)

    monkeypatch.setattr(app.store.claims, "complete_items", refuses_item_7)
    job = app.submit("echo", [{"n": i} for i in range(20)])
    with caplog.at_level(logging.ERROR, logger="batchyard.worker"), running_worker(app):
        view = wait_finished(app, job.id, timeout=30)
    assert (view.job.status, view.job.succeeded, view.job.failed) == ("completed", 19, 1)
    [failed] = list(job.errors())
    assert failed.seq == 7 and failed.error is not None and failed.error["code"] == "unrecordable"
    assert "the driver refused this row" in failed.error["message"]
    assert any(r.exc_info and "the driver refused this row" in str(r.exc_info[1]) for r in caplog.records)
    assert_counters_match_items(app, job.id)


def test_a_failing_side_task_stops_the_worker_loudly_and_hands_its_items_over(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()

    @app.handler("hold")
    async def hold(item: Any, ctx: ItemContext) -> None:
        started.set()
        await asyncio.sleep(30)

    def broken_heartbeat(*args: Any) -> None:
        raise KeyError("a bug in the heartbeat")

    job = app.submit("hold", [{"n": i} for i in range(3)])
    worker = app.worker(handlers=["hold"])
    monkeypatch.setattr(app.store.claims, "heartbeat", broken_heartbeat)
    monkeypatch.setattr(worker.settings, "lease_seconds", 0.6)  # heartbeats every 0.2 s
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="batchyard.worker"), pytest.raises(WorkerCrashed) as crash:
        asyncio.run(worker.run())
    assert time.monotonic() - began < 10  # not the 30 s items, not a grace period
    assert "heartbeat" in str(crash.value) and "a bug in the heartbeat" in str(crash.value)
    [logged] = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], KeyError)  # the traceback, at once
    [record] = [w for w in app.store.workers.list_workers() if w.id == worker.id]
    assert record.status == "crashed"
    assert worker.id not in {w.id for w in app.service.live_workers()}
    # Its items come back at once (no lease to wait out), as suspects, their attempts given back.
    assert app.store.claims.rescue_expired_leases() == 3
    items = list(job.items())
    assert {(i.status, i.attempts, i.rescues) for i in items} == {("queued", 0, 1)}


def test_a_sync_lane_that_breaks_stops_the_worker(app: Batchyard, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.handler("plain")
    def plain(item: Any, ctx: ItemContext) -> int:
        return 1

    worker = app.worker(handlers=["plain"])

    def broken_begin(work: WorkItem) -> bool:
        raise AttributeError("a bug in the lane")

    monkeypatch.setattr(worker.executor, "begin", broken_begin)  # what every lane calls first
    app.submit("plain", [{"n": 1}])
    with pytest.raises(WorkerCrashed, match="a bug in the lane"):
        asyncio.run(asyncio.wait_for(worker.run(), 20))


def test_tracebacks_do_not_show_the_servers_paths(app: Batchyard) -> None:
    data_dir = str(app.settings.data_dir)

    @app.handler("opens")
    def opens(item: Any, ctx: ItemContext) -> None:
        open(f"{data_dir}/missing/file.txt").close()

    job = app.submit("opens", [{"n": 1}], max_attempts=1)
    with running_worker(app):
        wait_finished(app, job.id, timeout=30)
    [item] = list(job.errors())
    assert item.error is not None
    shown = item.error["message"] + item.error["traceback"]
    assert data_dir not in shown and "<data-dir>/missing/file.txt" in item.error["message"]
    assert sys.prefix not in shown and str(Path.home()) not in shown
