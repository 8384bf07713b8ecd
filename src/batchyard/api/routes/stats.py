"""Stats for the dashboard's cards and charts: jobs and items by status, success rate, processing times,
throughput, usage and cost, overall and per project and per handler. Aggregates over the jobs table only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from batchyard.api.deps import BatchyardDep, PrincipalDep
from batchyard.api.filters import JobFilterDep
from batchyard.core.lifecycle import JobStatus
from batchyard.core.records import ITEM_COUNTERS, StatsBucket, StatsSnapshot
from batchyard.wire import ErrorResponse, HistoryOut

router = APIRouter(tags=["stats"])

RECENT_WINDOW_SECONDS = 3600.0
THROUGHPUT_WINDOW_SECONDS = 300.0
MIN_THROUGHPUT_SPAN_SECONDS = 1.0  # a burst that started a moment ago is not divided by ~0 seconds
MAX_EPOCH_SECONDS = 1e11
MAX_RECENT_JOBS = 200

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or an invalid API key"},
    403: {"model": ErrorResponse, "description": "`owner` names another owner and the caller is not an admin"},
    422: {"model": ErrorResponse, "description": "A query parameter out of range"},
}


class JobCounts(BaseModel):
    """Jobs by status."""

    total: int = 0
    queued: int = 0
    running: int = 0
    paused: int = 0
    finalizing: int = 0
    completed: int = 0
    failed: int = 0
    cancelling: int = 0
    cancelled: int = 0
    expired: int = 0


class ItemCounts(BaseModel):
    """Items by status, summed from the jobs' counters."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0


class StatsGroup(BaseModel):
    """The numbers for one set of jobs (all of them, one project, or one handler)."""

    jobs: JobCounts
    items: ItemCounts
    success_rate: float | None = Field(
        description="Succeeded / (succeeded + failed) items, 0 to 1; null while no item has finished"
    )
    avg_item_seconds: float | None = Field(
        description="Average handler time per finished (succeeded or failed) item; null while none has"
    )
    recent_avg_item_seconds: float | None = Field(
        description="The same, over the jobs active in the last hour; null if none finished an item"
    )
    items_per_second: float = Field(
        description="Items that succeeded or failed per second over the last 5 minutes (or since the first of "
        "those jobs started, if later)"
    )
    cost: float = Field(description="Summed `ctx.add_usage(cost=...)` of the jobs' items")
    usage: dict[str, float] = Field(description="Usage counters (tokens, pages, ...) summed over the jobs")


class ProjectStats(StatsGroup):
    project: str | None = Field(description="The project; null for jobs without one")


class HandlerStats(StatsGroup):
    handler: str


class StatsScope(BaseModel):
    """Which jobs the numbers cover."""

    owner: str | None = Field(description="The owner whose jobs are counted; null means every owner (admins)")
    project: str | None
    handler: str | None
    since: float | None = Field(description="Only jobs created at or after this time (epoch seconds)")


class Stats(BaseModel):
    """Stats over the jobs the caller can see, overall and broken down per project and per handler."""

    generated_at: float = Field(description="The database clock when the numbers were read (epoch seconds)")
    scope: StatsScope
    recent_window_seconds: float = Field(description="What `recent_avg_item_seconds` calls recent")
    throughput_window_seconds: float = Field(description="The window of `items_per_second`")
    totals: StatsGroup
    by_project: list[ProjectStats] = Field(description="One entry per project, by name (jobs without one first)")
    by_handler: list[HandlerStats] = Field(description="One entry per handler, by name")


@router.get(
    "/api/v1/stats",
    summary="Stats: counts, success rate, processing times, throughput, usage and cost",
    responses=ERRORS,
)
def get_stats(
    app: BatchyardDep,
    principal: PrincipalDep,
    project: Annotated[str | None, Query(max_length=200, description="Only this project's jobs")] = None,
    handler: Annotated[str | None, Query(max_length=200, description="Only this handler's jobs")] = None,
    since: Annotated[
        float | None,
        Query(ge=0, le=MAX_EPOCH_SECONDS, description="Only jobs created at or after this time (epoch seconds)"),
    ] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Admins only: one owner's jobs")] = None,
) -> Stats:
    scope, snapshot = app.stats.snapshot(
        principal,
        owner=owner,
        project=project,
        handler=handler,
        since=since,
        recent_seconds=RECENT_WINDOW_SECONDS,
        throughput_seconds=THROUGHPUT_WINDOW_SECONDS,
    )
    return Stats(
        generated_at=snapshot.now,
        scope=StatsScope(owner=scope.owner, project=project, handler=handler, since=since),
        recent_window_seconds=snapshot.recent_seconds,
        throughput_window_seconds=snapshot.throughput_seconds,
        totals=summarize(snapshot.buckets, snapshot),
        by_project=[
            ProjectStats(project=name, **dict(summarize(group, snapshot)))
            for name, group in _grouped(snapshot.buckets, lambda b: b.project)
        ],
        by_handler=[
            HandlerStats(handler=name, **dict(summarize(group, snapshot)))
            for name, group in _grouped(snapshot.buckets, lambda b: b.handler)
        ],
    )


def _grouped(
    buckets: list[StatsBucket], key: Callable[[StatsBucket], str | None]
) -> list[tuple[Any, list[StatsBucket]]]:
    groups: dict[str | None, list[StatsBucket]] = {}
    for bucket in buckets:
        groups.setdefault(key(bucket), []).append(bucket)
    return sorted(groups.items(), key=lambda pair: (pair[0] is not None, pair[0] or ""))


def summarize(buckets: Iterable[StatsBucket], snapshot: StatsSnapshot) -> StatsGroup:
    """Roll (project, handler) buckets up into one group and derive its rates. Pure."""
    jobs = dict.fromkeys((s.value for s in JobStatus), 0)
    items = dict.fromkeys(ITEM_COUNTERS, 0)
    busy = recent_busy = cost = 0.0
    recent_finished = window_finished = 0
    first_start: float | None = None
    usage: dict[str, float] = {}
    for b in buckets:
        for status, count in b.jobs_by_status.items():
            jobs[status] = jobs.get(status, 0) + count
        for name in ITEM_COUNTERS:
            items[name] += b.items[name]
        busy += b.busy_seconds
        recent_busy += b.recent_busy_seconds
        recent_finished += b.recent_finished
        cost += b.cost
        for name, amount in b.usage.items():
            usage[name] = usage.get(name, 0.0) + amount
        window_finished += b.window_finished
        if b.window_first_start is not None:
            first_start = b.window_first_start if first_start is None else min(first_start, b.window_first_start)
    finished = items["succeeded"] + items["failed"]
    window_start = snapshot.now - snapshot.throughput_seconds
    span = snapshot.now - max(window_start, first_start if first_start is not None else window_start)
    return StatsGroup(
        jobs=JobCounts(total=sum(jobs.values()), **{k: v for k, v in jobs.items() if k in JobCounts.model_fields}),
        items=ItemCounts(**items),
        success_rate=items["succeeded"] / finished if finished else None,
        avg_item_seconds=busy / finished if finished else None,
        recent_avg_item_seconds=recent_busy / recent_finished if recent_finished else None,
        items_per_second=window_finished / max(span, MIN_THROUGHPUT_SPAN_SECONDS) if window_finished else 0.0,
        cost=cost,
        usage=dict(sorted(usage.items())),
    )


@router.get(
    "/api/v1/stats/history",
    summary="History: finished jobs per hour or day (status mix, items, success rate, durations, cost)",
    responses={**ERRORS, 400: {"model": ErrorResponse, "description": "A range or bucket that cannot be shown"}},
)
def get_history(
    app: BatchyardDep,
    principal: PrincipalDep,
    where: JobFilterDep,
    since: Annotated[
        float | None, Query(ge=0, le=MAX_EPOCH_SECONDS, description="Jobs finished at or after (default: 7 days ago)")
    ] = None,
    until: Annotated[
        float | None, Query(ge=0, le=MAX_EPOCH_SECONDS, description="Jobs finished before (default: now)")
    ] = None,
    bucket: Annotated[
        Literal["hour", "day"] | None, Query(description="Default: hour for up to 2 days, else day (UTC)")
    ] = None,
    recent: Annotated[int, Query(ge=0, le=MAX_RECENT_JOBS, description="How many of the latest jobs to list")] = 20,
) -> HistoryOut:
    """Jobs that finished in [since, until) and match the job list's filters, summed per bucket from their
    counters (never items): jobs by status, items succeeded and failed, success rate, average, p50 and p95 job
    duration, throughput and cost; the same over the whole range; and the latest jobs' processing time. At most
    1,000 buckets."""
    return HistoryOut.of(app.stats.history(principal, where, since=since, until=until, bucket=bucket, recent=recent))
