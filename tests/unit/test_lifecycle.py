"""The lifecycle table: every legal move, every illegal one, and the properties the rest relies on."""

from __future__ import annotations

import itertools

import pytest

from batchyard.errors import IllegalTransition
from batchyard.lifecycle import (
    JOB_TRANSITIONS,
    TERMINAL_JOB_STATUSES,
    Action,
    ItemStatus,
    JobStatus,
    can,
    item_can_move,
    next_job_status,
    sources,
)


@pytest.mark.parametrize(("current", "action", "target"), [(s, a, t) for (s, a), t in JOB_TRANSITIONS.items()])
def test_every_legal_move(current: JobStatus, action: Action, target: JobStatus) -> None:
    assert next_job_status(current, action) is target
    assert can(current.value, action)


ILLEGAL = [(s, a) for s, a in itertools.product(JobStatus, Action) if (s, a) not in JOB_TRANSITIONS]


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_every_illegal_move_is_a_clear_error(current: JobStatus, action: Action) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_job_status(current, action)
    assert info.value.current == current.value
    assert info.value.status == 409
    assert current.value in info.value.message and "allowed from" in info.value.message


def test_the_documented_flow() -> None:
    path = [Action.START, Action.PAUSE, Action.RESUME, Action.FINALIZE, Action.COMPLETE]
    status = JobStatus.QUEUED
    seen = [status]
    for action in path:
        status = next_job_status(status, action)
        seen.append(status)
    assert [s.value for s in seen] == ["queued", "running", "paused", "running", "finalizing", "completed"]
    assert next_job_status(next_job_status(JobStatus.RUNNING, Action.CANCEL), Action.SETTLE) is JobStatus.CANCELLED


def test_terminal_jobs_only_retry_or_delete() -> None:
    for status in TERMINAL_JOB_STATUSES:
        allowed = {a for (s, a) in JOB_TRANSITIONS if s is status}
        assert allowed <= {Action.RETRY, Action.DELETE}, status
    assert {s for (s, a) in JOB_TRANSITIONS if a is Action.DELETE} == set(TERMINAL_JOB_STATUSES)


def test_only_finished_jobs_can_be_deleted_and_cancel_needs_a_live_job() -> None:
    assert sources(Action.CANCEL) == {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}
    assert not can(JobStatus.CANCELLING, Action.CANCEL)


def test_item_moves() -> None:
    assert item_can_move("queued", "running") and item_can_move("running", "queued")
    assert item_can_move(ItemStatus.FAILED, ItemStatus.QUEUED)  # retry failed items
    for terminal in ("succeeded", "cancelled"):
        assert not any(item_can_move(terminal, t) for t in ItemStatus)
    assert not item_can_move("queued", "succeeded")
