"""The wire schema: one model per resource, built from the service's view and parsed back to the same thing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchyard.core.records import ItemProgress, JobRecord, RunningProgress
from batchyard.core.roles import Role
from batchyard.services.auth import Principal
from batchyard.services.jobs import JobView
from batchyard.wire import JobOut, Page, RetryOut

JOB_FIELDS = [
    "id", "handler", "owner", "project", "status", "status_reason", "status_message", "priority", "description",
    "tags", "metadata", "params", "source", "counts", "percent", "items_per_second", "eta_seconds",
    "duration_seconds", "avg_item_seconds", "cost", "usage", "error", "created_at", "started_at", "finished_at",
    "last_activity_at", "scheduled_at", "expires_at", "settings", "result_files", "files_written_at", "finished",
    "workers_alive", "running_progress", "current", "webhook_url", "notify_emails",
]  # fmt: skip


def record(**changes: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "id": "job_1", "handler": "echo", "owner": "alice", "project": None, "status": "running", "priority": 0,
        "params": {"a": 1}, "description": None, "tags": ["x"], "metadata": {}, "source": "inline items",
        "total": 10, "queued": 3, "running": 2, "succeeded": 4, "failed": 1, "cancelled": 0, "cost": 0.5,
        "usage": {"tokens": 3}, "busy_seconds": 2.5, "created_at": 100.0, "started_at": 101.0, "finished_at": None,
        "last_activity_at": 102.0, "scheduled_at": None, "expires_at": None, "error": None, "max_attempts": 3,
        "backoff_base_seconds": 1.0, "backoff_max_seconds": 300.0, "timeout_seconds": None, "concurrency": None,
        "max_failures": None, "max_failure_rate": None, "files_written_at": None, "result_files": {},
    }  # fmt: skip
    return JobRecord(**{**fields, **changes})


def test_a_job_serializes_with_every_field_in_order() -> None:
    out = JobOut.of(JobView(record(), 1.5, 3.0)).model_dump(mode="json")
    assert list(out) == JOB_FIELDS
    assert out["counts"] == {"total": 10, "queued": 3, "running": 2, "succeeded": 4, "failed": 1, "cancelled": 0,
                             "skipped": 0, "done": 5}  # fmt: skip
    assert out["percent"] == 50.0
    assert out["status_reason"] is None and out["status_message"] is None
    assert out["avg_item_seconds"] == 0.5
    assert out["status"] == "running" and out["finished"] is False
    assert out["settings"]["max_attempts"] == 3
    assert out["running_progress"] == 0.0 and out["current"] == []
    assert out["webhook_url"] is None and out["notify_emails"] == []


def test_a_job_counts_and_shows_its_running_items_progress() -> None:
    reports = (
        ItemProgress("import-2", 750.0, 1000.0, "rows 750 of 1,000", 120.0),
        ItemProgress("import-1", 3.0, None, "reading the header", 119.0),
    )
    view = JobView(record(), 1.5, 3.0, 1, RunningProgress(0.75, reports))

    out = JobOut.of(view).model_dump(mode="json")

    assert out["percent"] == 57.5  # (5 finished + 0.75 of a running item) / 10
    assert out["running_progress"] == 0.75
    assert out["current"] == [
        {"key": "import-2", "done": 750.0, "total": 1000.0, "message": "rows 750 of 1,000", "updated_at": 120.0},
        {"key": "import-1", "done": 3.0, "total": None, "message": "reading the header", "updated_at": 119.0},
    ]
    assert JobOut.model_validate(out).current[0].message == "rows 750 of 1,000"
    # an answer from a server without these fields still parses, with nothing invented
    older = {k: v for k, v in out.items() if k not in ("running_progress", "current")}
    assert JobOut.model_validate(older).current == []


def test_skipped_items_count_as_done_not_as_failed_or_processed() -> None:
    job = record(queued=1, skipped=2, status="paused", status_reason="paused_by_handler", status_message="no tokens")
    out = JobOut.of(JobView(job, None, None)).model_dump(mode="json")
    assert out["counts"]["skipped"] == 2 and out["counts"]["done"] == 7  # 4 succeeded + 1 failed + 2 skipped
    assert out["percent"] == 70.0
    assert out["avg_item_seconds"] == 0.5  # handler time over succeeded + failed only
    assert (out["status_reason"], out["status_message"]) == ("paused_by_handler", "no tokens")
    assert JobOut.model_validate(out).status_reason == "paused_by_handler"


@pytest.mark.parametrize(
    ("changes", "finished"),
    [
        ({"status": "completed", "files_written_at": 110.0}, True),
        ({"status": "completed"}, False),  # its files are not written yet
        ({"status": "cancelled", "total": 0, "queued": 0, "running": 0, "succeeded": 0, "failed": 0}, True),
    ],
)
def test_finished_means_terminal_with_its_files_written(changes: dict[str, Any], finished: bool) -> None:
    view = JobView(record(**changes), None, None)
    assert JobOut.of(view).finished is finished is view.finished


def test_parsing_the_json_gives_the_same_job_back() -> None:
    job = JobOut.of(JobView(record(tags=("a", "b")), None, None))
    text = job.model_dump_json()
    assert JobOut.model_validate_json(text) == job
    assert JobOut.model_validate(json.loads(text)) == job
    assert JobOut.model_validate(job) is job  # code written for a dict also takes the model
    page = Page[JobOut].model_validate({"data": [json.loads(text)], "has_more": False, "next_cursor": None})
    assert page.data == [job]


def test_the_view_json_is_the_wire_json() -> None:
    view = JobView(record(finished_at=109.0), 2.0, None)  # finished: its duration does not grow
    assert view.to_dict() == JobOut.of(view).model_dump(mode="json")


def test_a_retry_answer_is_a_job_and_the_count() -> None:
    out = RetryOut.of_retry(JobView(record(), None, None), 4).model_dump(mode="json")
    assert list(out) == [*JOB_FIELDS, "retried"] and out["retried"] == 4


@pytest.mark.parametrize(
    ("role", "requested", "scope"),
    [
        (Role.ADMIN, None, None),
        (Role.ADMIN, "bob", "bob"),
        (Role.MEMBER, None, "alice"),
        (Role.MEMBER, "bob", "alice"),
        (Role.VIEWER, "bob", "alice"),
    ],
)
def test_the_owner_scope_of_a_listing(role: Role, requested: str | None, scope: str | None) -> None:
    assert Principal("alice", role).owner_scope(requested) == scope
