"""Job and item statuses and the one table of allowed moves. Pure: no I/O, no clock."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

from batchyard.errors import IllegalTransition


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ItemStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # the app said so (``SkipItem``): processed, not failed


class StatusReason(StrEnum):
    """Why a job is in its status, where that is worth saying (``jobs.status_reason``; null otherwise). Any move
    to another status clears it unless the move gives a reason of its own."""

    PAUSED_BY_USER = "paused_by_user"  # jobs pause, POST .../pause, the dashboard
    PAUSED_BY_HANDLER = "paused_by_handler"  # a handler or admit hook raised PauseJob (with its message)
    QUOTA_EXHAUSTED = "quota_exhausted"  # a budget of its owner's quota is spent; resumes by itself (core/quotas.py)


class Action(StrEnum):
    """What moves a job: user actions (pause, resume, cancel, retry, delete) and the system's own moves."""

    START = "start"  # first item claimed
    PAUSE = "pause"
    RESUME = "resume"
    FINALIZE = "finalize"  # every item terminal; result files being written
    COMPLETE = "complete"  # result files written
    FAIL = "fail"  # failure threshold crossed
    CANCEL = "cancel"
    SETTLE = "settle"  # cancelling job with nothing running left
    EXPIRE = "expire"  # completion window passed
    RETRY = "retry"  # failed (and, asked or for a cancelled/expired job, cancelled) items queued again
    DELETE = "delete"


J = JobStatus
# Every set of job statuses the rest of the code asks about, each named for its question.
TERMINAL_JOB_STATUSES = frozenset({J.COMPLETED, J.FAILED, J.CANCELLED, J.EXPIRED})
CLAIMABLE_JOB_STATUSES = frozenset({J.QUEUED, J.RUNNING})  # its items may be claimed
# Not yet stopping or finishing: may still be paused, cancelled, failed, expired or finalized.
LIVE_JOB_STATUSES = frozenset({J.QUEUED, J.RUNNING, J.PAUSED})
# Its items must stop and never run again: their retries, releases and rescues end them cancelled.
STOPPING_JOB_STATUSES = frozenset({J.CANCELLING, J.CANCELLED, J.FAILED, J.EXPIRED})
# Its result files are written once nothing of it runs any more.
AWAITING_FILES_JOB_STATUSES = frozenset({J.FINALIZING, J.CANCELLED, J.FAILED, J.EXPIRED})
# Not finished yet: what the dashboard's "Active" tab and ``status=active`` show.
ACTIVE_JOB_STATUSES = frozenset({J.QUEUED, J.RUNNING, J.PAUSED, J.FINALIZING, J.CANCELLING})
SAMPLED_JOB_STATUSES = frozenset({J.RUNNING, J.PAUSED, J.CANCELLING})  # progress samples are recorded
TERMINAL_ITEM_STATUSES = frozenset({ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED, ItemStatus.SKIPPED})
# Items a retry may queue again (``include``); succeeded and skipped items keep their outcome.
RETRYABLE_ITEM_STATUSES = frozenset({ItemStatus.FAILED, ItemStatus.CANCELLED})
# Ended before its work was done: running it again is a *rerun* (the ``rerun`` event), not a retry.
RERUN_JOB_STATUSES = frozenset({J.CANCELLED, J.EXPIRED})

# (from, action) -> to. A pair not listed is an illegal move.
JOB_TRANSITIONS: dict[tuple[JobStatus, Action], JobStatus] = {
    (J.QUEUED, Action.START): J.RUNNING,
    (J.QUEUED, Action.PAUSE): J.PAUSED,
    (J.RUNNING, Action.PAUSE): J.PAUSED,
    (J.PAUSED, Action.RESUME): J.RUNNING,  # the store picks QUEUED instead if nothing ever started
    (J.QUEUED, Action.FINALIZE): J.FINALIZING,  # every item was cancelled or the job was empty
    (J.RUNNING, Action.FINALIZE): J.FINALIZING,
    (J.PAUSED, Action.FINALIZE): J.FINALIZING,  # the last in-flight items finished while paused
    (J.FINALIZING, Action.COMPLETE): J.COMPLETED,
    (J.QUEUED, Action.FAIL): J.FAILED,
    (J.RUNNING, Action.FAIL): J.FAILED,
    (J.PAUSED, Action.FAIL): J.FAILED,
    (J.QUEUED, Action.CANCEL): J.CANCELLING,
    (J.RUNNING, Action.CANCEL): J.CANCELLING,
    (J.PAUSED, Action.CANCEL): J.CANCELLING,
    (J.CANCELLING, Action.SETTLE): J.CANCELLED,
    (J.QUEUED, Action.EXPIRE): J.EXPIRED,
    (J.RUNNING, Action.EXPIRE): J.EXPIRED,
    (J.PAUSED, Action.EXPIRE): J.EXPIRED,
    (J.RUNNING, Action.RETRY): J.RUNNING,
    (J.PAUSED, Action.RETRY): J.PAUSED,
    (J.COMPLETED, Action.RETRY): J.RUNNING,
    (J.FAILED, Action.RETRY): J.RUNNING,
    (J.CANCELLED, Action.RETRY): J.RUNNING,  # run again; the store picks QUEUED if nothing ever started
    (J.EXPIRED, Action.RETRY): J.RUNNING,
    (J.COMPLETED, Action.DELETE): J.COMPLETED,
    (J.FAILED, Action.DELETE): J.FAILED,
    (J.CANCELLED, Action.DELETE): J.CANCELLED,
    (J.EXPIRED, Action.DELETE): J.EXPIRED,
}

_ACTION_WORDS = {
    Action.PAUSE: "pause",
    Action.RESUME: "resume",
    Action.CANCEL: "cancel",
    Action.RETRY: "retry",
    Action.DELETE: "delete",
}


def next_job_status(current: JobStatus | str, action: Action) -> JobStatus:
    """The status a job moves to, or :class:`IllegalTransition` saying why not."""
    status = JobStatus(current)
    target = JOB_TRANSITIONS.get((status, action))
    if target is None:
        verb = _ACTION_WORDS.get(action, action.value)
        allowed = sorted(s.value for (s, a) in JOB_TRANSITIONS if a is action)
        raise IllegalTransition(
            f"cannot {verb} a job that is {status.value} (allowed from: {', '.join(allowed)})",
            current=status.value,
        )
    return target


def can(current: JobStatus | str, action: Action) -> bool:
    return (JobStatus(current), action) in JOB_TRANSITIONS


def sources(action: Action) -> frozenset[JobStatus]:
    """Every status a job may be in for ``action`` to apply (for conditional updates in SQL)."""
    return frozenset(s for (s, a) in JOB_TRANSITIONS if a is action)


# Items move: queued -> running (claim); running -> succeeded | failed | cancelled | skipped | queued (retry,
# rescue, release, pause); queued -> cancelled (job cancelled); failed | cancelled -> queued (retry, rerun).
ITEM_TRANSITIONS: frozenset[tuple[ItemStatus, ItemStatus]] = frozenset(
    {
        (ItemStatus.QUEUED, ItemStatus.RUNNING),
        (ItemStatus.QUEUED, ItemStatus.CANCELLED),
        (ItemStatus.RUNNING, ItemStatus.SUCCEEDED),
        (ItemStatus.RUNNING, ItemStatus.FAILED),
        (ItemStatus.RUNNING, ItemStatus.CANCELLED),
        (ItemStatus.RUNNING, ItemStatus.SKIPPED),
        (ItemStatus.RUNNING, ItemStatus.QUEUED),
        (ItemStatus.FAILED, ItemStatus.QUEUED),
        (ItemStatus.CANCELLED, ItemStatus.QUEUED),
    }
)


def retry_includes(status: JobStatus | str, include: frozenset[ItemStatus] | None = None) -> frozenset[ItemStatus]:
    """Which items a retry queues again: ``include`` when given (a subset of :data:`RETRYABLE_ITEM_STATUSES`),
    else the failed ones, and the cancelled ones too for a job that was cancelled or expired (a rerun)."""
    if include is not None:
        return include
    if JobStatus(status) in RERUN_JOB_STATUSES:
        return RETRYABLE_ITEM_STATUSES
    return frozenset({ItemStatus.FAILED})


def item_can_move(current: ItemStatus | str, target: ItemStatus | str) -> bool:
    return (ItemStatus(current), ItemStatus(target)) in ITEM_TRANSITIONS


# -- item outcomes -------------------------------------------------------------------------------------------
# How one attempt at an item ended, as a worker (or a lease rescue) reports it: a final status (``skipped``: the
# app's ``SkipItem``), or a way back to the queue -- ``retry`` (the attempt counts, after a backoff), ``release``
# (not started or interrupted by a pause or shutdown: the attempt is given back), ``rescue`` (its worker died: the
# attempt is given back and the item becomes a suspect) or ``pause`` (the app's ``PauseJob``: the attempt is
# given back and the job pauses, ``paused_by_handler``).
OutcomeKind = Literal["succeeded", "failed", "retry", "cancelled", "release", "rescue", "skipped", "pause"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = get_args(OutcomeKind)
REQUEUE_KINDS: frozenset[OutcomeKind] = frozenset({"retry", "release", "rescue", "pause"})
# Requeued without spending the attempt it was claimed with.
ATTEMPT_GIVEN_BACK_KINDS: frozenset[OutcomeKind] = frozenset({"release", "rescue", "pause"})


def skip_reason(*, job_cancelled: bool, job_paused: bool, draining: bool) -> OutcomeKind | None:
    """Why a claimed item does not start, or None: it ends cancelled with its stopping job, or goes back to the
    queue untouched while its job is paused or its worker shuts down."""
    if job_cancelled:
        return "cancelled"
    if job_paused or draining:
        return "release"
    return None


def after_failure(*, retryable: bool, attempt: int, max_attempts: int, job_stopping: bool) -> OutcomeKind:
    """What an attempt that raised or timed out becomes: another attempt later (``retry``), or the item's
    failure -- when the error says retrying cannot help, the attempts are spent, or the job is stopping."""
    if retryable and attempt < max_attempts and not job_stopping:
        return "retry"
    return "failed"


def after_crash(*, rescues: int, max_rescues: int) -> OutcomeKind:
    """What an item in flight when its worker died becomes (``rescues``: the crashes it was in before this
    one): a suspect back in the queue, or set aside as failed (``poison``) at its ``max_rescues``-th crash."""
    return "failed" if rescues + 1 >= max_rescues else "rescue"


def recorded_as(kind: OutcomeKind, *, job_stopping: bool) -> OutcomeKind:
    """What the store records for an outcome, given whether the item's job is stopping now (the worker's view
    may be stale). A stopping job's items never go back to the queue: they end cancelled. And only a stopping
    job's items end cancelled: a worker that says otherwise had a stale view (the job was retried since, say),
    so the item goes back untouched (``release``) -- a missing or late answer about a job never cancels items."""
    if kind in REQUEUE_KINDS:
        return "cancelled" if job_stopping else kind
    if kind == "cancelled" and not job_stopping:
        return "release"
    return kind


# recorded_as as a table, for the hot path: RECORDED_AS[job_stopping][kind].
RECORDED_AS: dict[bool, dict[OutcomeKind, OutcomeKind]] = {
    stopping: {kind: recorded_as(kind, job_stopping=stopping) for kind in OUTCOME_KINDS} for stopping in (False, True)
}


MIN_ITEMS_FOR_FAILURE_RATE = 20  # a rate threshold waits for this many finished items before it can trip


def failure_threshold_crossed(
    failed: int, succeeded: int, max_failures: int | None, max_failure_rate: float | None
) -> str | None:
    """Why a job must fail for its failures, or None. ``max_failures`` N: more than N failed items fail the
    job; ``max_failure_rate`` r: a failed share above r once enough items finished."""
    if max_failures is not None and failed > max_failures:
        return f"{failed} items failed, more than the job's max_failures of {max_failures}"
    finished = failed + succeeded
    if max_failure_rate is not None and finished >= MIN_ITEMS_FOR_FAILURE_RATE and failed > max_failure_rate * finished:
        return (
            f"{failed} of {finished} finished items failed ({failed / finished:.0%}), over the job's "
            f"max_failure_rate of {max_failure_rate:.0%}"
        )
    return None
