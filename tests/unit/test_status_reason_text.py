"""How the CLI says why a job is paused: the jobs table, jobs show, and the live bar."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from batchyard.cli import render
from batchyard.cli.bar import _eta_text
from batchyard.core.records import JobRecord
from batchyard.services.jobs import JobView
from batchyard.wire import JobOut

MESSAGE = "Token balance exhausted: 0 of 1,200 left"


def job(**changes: Any) -> JobOut:
    fields: dict[str, Any] = {
        "id": "job_1", "handler": "article", "owner": "alice", "project": None, "status": "paused", "priority": 0,
        "params": {}, "description": None, "tags": [], "metadata": {}, "source": None, "total": 10, "queued": 5,
        "running": 0, "succeeded": 4, "failed": 0, "cancelled": 0, "skipped": 1, "cost": 0.0, "usage": {},
        "busy_seconds": 1.0, "created_at": 100.0, "started_at": 101.0, "finished_at": None,
        "last_activity_at": 102.0, "scheduled_at": None, "expires_at": None, "error": None, "max_attempts": 3,
        "backoff_base_seconds": 1.0, "backoff_max_seconds": 300.0, "timeout_seconds": None, "concurrency": None,
        "max_failures": None, "max_failure_rate": None, "files_written_at": None, "result_files": {},
        "status_reason": "paused_by_handler", "status_message": MESSAGE,
    }  # fmt: skip
    return JobOut.of(JobView(JobRecord(**{**fields, **changes}), None, None, 1))


def _text(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_reason_in_words_with_the_message() -> None:
    assert render.reason_text(job()) == f"paused by the handler: {MESSAGE}"
    assert render.reason_text(job(status_reason="paused_by_user", status_message=None)) == "paused by a person"
    assert render.reason_text(job(status_reason=None, status_message=None)) is None
    assert render.reason_text(job(), limit=20) == "paused by the handler: Token balance exhau…"


def test_the_table_show_and_bar_say_it() -> None:
    table = _text(render.jobs_table([job()], now=110.0))
    assert "paused by the handler: Token balance exhausted: 0 of 1,200 left" in table
    details = _text(render.job_details(job(), [], [], now=110.0))
    assert f"paused by the handler: {MESSAGE}" in details and "1 skipped" in details
    assert "paused by the handler: Token balance" in _eta_text(job())
    assert _eta_text(job(status_reason=None, status_message=None)) == "ETA -"
