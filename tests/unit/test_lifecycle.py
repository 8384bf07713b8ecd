"""The lifecycle table: every legal move, every illegal one, and the properties the rest relies on."""

from __future__ import annotations

import itertools

import pytest

from batchyard.core.lifecycle import (
    ATTEMPT_GIVEN_BACK_KINDS,
    AWAITING_FILES_JOB_STATUSES,
    CLAIMABLE_JOB_STATUSES,
    JOB_TRANSITIONS,
    LIVE_JOB_STATUSES,
    OUTCOME_KINDS,
    RECORDED_AS,
    REQUEUE_KINDS,
    RERUN_JOB_STATUSES,
    RETRYABLE_ITEM_STATUSES,
    STOPPING_JOB_STATUSES,
    TERMINAL_ITEM_STATUSES,
    TERMINAL_JOB_STATUSES,
    Action,
    ItemStatus,
    JobStatus,
    OutcomeKind,
    StatusReason,
    after_crash,
    after_failure,
    can,
    item_can_move,
    next_job_status,
    recorded_as,
    retry_includes,
    skip_reason,
    sources,
)
from batchyard.errors import IllegalTransition
from batchyard.store.claims import suspect_group_size


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
    assert item_can_move(ItemStatus.CANCELLED, ItemStatus.QUEUED)  # run a cancelled job again
    assert item_can_move(ItemStatus.RUNNING, ItemStatus.SKIPPED)  # SkipItem
    for kept in ("succeeded", "skipped"):  # a retry never touches them: their results are kept
        assert not any(item_can_move(kept, t) for t in ItemStatus)
    assert not item_can_move("queued", "succeeded")
    assert not item_can_move("queued", "skipped")  # only a handler or admit hook skips, while the item runs


# Every (from, to) pair of item statuses, legal or not: the whole table.
ITEM_MOVES = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "skipped"),
    ("running", "queued"),
    ("failed", "queued"),
    ("cancelled", "queued"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(ItemStatus, ItemStatus)))
def test_every_item_move(current: ItemStatus, target: ItemStatus) -> None:
    assert item_can_move(current, target) == ((current.value, target.value) in ITEM_MOVES)


def test_only_failed_and_cancelled_items_are_queued_again() -> None:
    assert {s for s in ItemStatus if item_can_move(s, ItemStatus.QUEUED)} - {ItemStatus.RUNNING} == set(
        RETRYABLE_ITEM_STATUSES
    )
    assert ItemStatus.SKIPPED in TERMINAL_ITEM_STATUSES


@pytest.mark.parametrize(
    ("status", "include", "expected"),
    [
        *[(s, None, {"failed"}) for s in JobStatus if s not in RERUN_JOB_STATUSES],
        ("cancelled", None, {"failed", "cancelled"}),
        ("expired", None, {"failed", "cancelled"}),
        *[
            (s, frozenset(inc), set(inc))
            for s in JobStatus
            for inc in ({ItemStatus.FAILED}, {ItemStatus.CANCELLED}, {ItemStatus.FAILED, ItemStatus.CANCELLED})
        ],
    ],
)
def test_retry_includes_for_every_status(
    status: JobStatus, include: frozenset[ItemStatus] | None, expected: set[str]
) -> None:
    assert {s.value for s in retry_includes(status, include)} == expected


def test_cancelled_and_expired_jobs_run_again() -> None:
    assert next_job_status(JobStatus.CANCELLED, Action.RETRY) is JobStatus.RUNNING
    assert next_job_status(JobStatus.EXPIRED, Action.RETRY) is JobStatus.RUNNING
    assert sources(Action.RETRY) == {
        JobStatus.RUNNING,
        JobStatus.PAUSED,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.EXPIRED,
    }
    assert {JobStatus.CANCELLED, JobStatus.EXPIRED} == RERUN_JOB_STATUSES
    with pytest.raises(IllegalTransition, match="cannot retry a job that is cancelling"):
        next_job_status(JobStatus.CANCELLING, Action.RETRY)


def test_status_reasons() -> None:
    assert {r.value for r in StatusReason} == {"paused_by_user", "paused_by_handler", "quota_exhausted"}


def test_the_status_sets_agree_with_the_table() -> None:
    assert LIVE_JOB_STATUSES == sources(Action.CANCEL) == sources(Action.FAIL) == sources(Action.EXPIRE)
    assert CLAIMABLE_JOB_STATUSES < LIVE_JOB_STATUSES  # a paused job's items wait
    assert (TERMINAL_JOB_STATUSES - {JobStatus.COMPLETED}) | {JobStatus.CANCELLING} == STOPPING_JOB_STATUSES
    assert not STOPPING_JOB_STATUSES & (LIVE_JOB_STATUSES | {JobStatus.FINALIZING})
    # Files are written for a job that ended with nothing left to run, or whose items all finished.
    assert (STOPPING_JOB_STATUSES - {JobStatus.CANCELLING}) | {JobStatus.FINALIZING} == AWAITING_FILES_JOB_STATUSES


# -- item outcomes: every input, the way the job table is tested --------------------------------------------


@pytest.mark.parametrize(
    ("job_cancelled", "job_paused", "draining", "expected"),
    [
        (False, False, False, None),
        (False, False, True, "release"),
        (False, True, False, "release"),
        (False, True, True, "release"),
        (True, False, False, "cancelled"),
        (True, False, True, "cancelled"),
        (True, True, False, "cancelled"),
        (True, True, True, "cancelled"),
    ],
)
def test_skip_reason_for_every_input(
    job_cancelled: bool, job_paused: bool, draining: bool, expected: str | None
) -> None:
    assert skip_reason(job_cancelled=job_cancelled, job_paused=job_paused, draining=draining) == expected


ATTEMPTS = range(1, 7)


@pytest.mark.parametrize(
    ("retryable", "job_stopping", "attempt", "max_attempts"),
    list(itertools.product([False, True], [False, True], ATTEMPTS, ATTEMPTS)),
)
def test_after_failure_for_every_input(retryable: bool, job_stopping: bool, attempt: int, max_attempts: int) -> None:
    decision = after_failure(retryable=retryable, attempt=attempt, max_attempts=max_attempts, job_stopping=job_stopping)
    attempts_left = max_attempts - attempt
    assert decision == ("retry" if retryable and not job_stopping and attempts_left > 0 else "failed")


def test_after_failure_retries_exactly_max_attempts_minus_one_times() -> None:
    for max_attempts in ATTEMPTS:
        attempt = 1
        while after_failure(retryable=True, attempt=attempt, max_attempts=max_attempts, job_stopping=False) == "retry":
            attempt += 1
        assert attempt == max_attempts


@pytest.mark.parametrize(("rescues", "max_rescues"), list(itertools.product(range(10), range(1, 9))))
def test_after_crash_for_every_input(rescues: int, max_rescues: int) -> None:
    decision = after_crash(rescues=rescues, max_rescues=max_rescues)
    crashes = rescues + 1  # this one included
    assert decision == ("failed" if crashes >= max_rescues else "rescue")
    if crashes == max_rescues and max_rescues > 1:  # poison only once it ran alone among suspects
        assert suspect_group_size(rescues, max_rescues) == 1


# (kind reported, job stopping) -> kind recorded: the whole table.
RECORDED: dict[tuple[OutcomeKind, bool], OutcomeKind] = {
    ("succeeded", False): "succeeded",
    ("succeeded", True): "succeeded",
    ("failed", False): "failed",
    ("failed", True): "failed",
    ("cancelled", False): "release",  # a stale view: the job is not stopping, so the item goes back untouched
    ("cancelled", True): "cancelled",
    ("retry", False): "retry",
    ("retry", True): "cancelled",
    ("release", False): "release",
    ("release", True): "cancelled",
    ("rescue", False): "rescue",
    ("rescue", True): "cancelled",
    ("skipped", False): "skipped",  # the app's SkipItem is final, like a success
    ("skipped", True): "skipped",
    ("pause", False): "pause",  # back to the queue, and the job pauses
    ("pause", True): "cancelled",  # a stopping job's items never go back to the queue
}


def test_which_requeues_give_the_attempt_back() -> None:
    assert {"release", "rescue", "pause"} == ATTEMPT_GIVEN_BACK_KINDS
    assert ATTEMPT_GIVEN_BACK_KINDS < REQUEUE_KINDS
    assert {"retry"} == REQUEUE_KINDS - ATTEMPT_GIVEN_BACK_KINDS  # only a retry spends the attempt


def test_the_recorded_table_covers_every_input() -> None:
    assert set(RECORDED) == set(itertools.product(OUTCOME_KINDS, [False, True]))


@pytest.mark.parametrize(("kind", "job_stopping"), list(RECORDED))
def test_recorded_as_for_every_input(kind: OutcomeKind, job_stopping: bool) -> None:
    recorded = recorded_as(kind, job_stopping=job_stopping)
    assert recorded == RECORDED[kind, job_stopping] == RECORDED_AS[job_stopping][kind]
    if job_stopping:
        assert recorded not in REQUEUE_KINDS  # a stopping job's items never go back to the queue
    else:
        assert recorded != "cancelled"  # only a stopping job's items end cancelled
    if recorded not in REQUEUE_KINDS:
        assert recorded in {s.value for s in TERMINAL_ITEM_STATUSES}
        assert item_can_move(ItemStatus.RUNNING, recorded)
    else:
        assert item_can_move(ItemStatus.RUNNING, ItemStatus.QUEUED)
