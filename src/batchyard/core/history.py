"""The History page's numbers: finished jobs summed per time bucket (hour or day, UTC) from their counters. Pure.

A job counts in the bucket in which it finished (``finished_at``): its status, its items (succeeded, failed),
its cost, and its duration (``finished_at - started_at``; a job that never started has none). Per bucket and
over the whole range: jobs by status, items succeeded and failed, the success rate (succeeded / (succeeded +
failed)), the average, median (p50) and p95 job duration (linear interpolation between the closest ranks), the
throughput (items processed by the jobs that finished in the bucket, per second of the bucket) and the cost.
Every bucket of the range is there, empty ones too, so a chart has no holes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 86400.0
BUCKETS = {"hour": HOUR, "day": DAY}
FINISHED_STATUSES = ("completed", "failed", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class FinishedJob:
    status: str
    succeeded: int
    failed: int
    cost: float
    started_at: float | None
    finished_at: float


@dataclass(slots=True)
class Period:
    """The numbers of one bucket, or of the whole range."""

    start: float
    end: float
    jobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED_STATUSES, 0))
    succeeded: int = 0
    failed: int = 0
    cost: float = 0.0
    durations: list[float] = field(default_factory=list)

    def add(self, job: FinishedJob) -> None:
        self.jobs[job.status] = self.jobs.get(job.status, 0) + 1
        self.succeeded += job.succeeded
        self.failed += job.failed
        self.cost += job.cost
        if job.started_at is not None:
            self.durations.append(max(0.0, job.finished_at - job.started_at))

    @property
    def jobs_total(self) -> int:
        return sum(self.jobs.values())

    @property
    def success_rate(self) -> float | None:
        processed = self.succeeded + self.failed
        return self.succeeded / processed if processed else None

    @property
    def items_per_second(self) -> float:
        return (self.succeeded + self.failed) / (self.end - self.start) if self.end > self.start else 0.0

    @property
    def avg_duration(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    def duration_percentile(self, pct: float) -> float | None:
        return percentile(sorted(self.durations), pct)


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The ``pct`` (0-100) percentile of sorted values, interpolating linearly between the closest ranks."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bucket_start(at: float, size: float) -> float:
    """The start of the UTC bucket holding ``at`` (epoch seconds are UTC; a day starts at midnight UTC)."""
    return math.floor(at / size) * size


def summarize(jobs: Iterable[FinishedJob], since: float, until: float, size: float) -> tuple[list[Period], Period]:
    """(the buckets from the one holding ``since`` to the one holding ``until`` (exclusive), the whole range).
    Jobs outside [since, until) are ignored."""
    first = bucket_start(since, size)
    count = max(1, math.ceil((until - first) / size))
    buckets = [Period(first + i * size, first + (i + 1) * size) for i in range(count)]
    total = Period(since, until)
    for job in jobs:
        if not since <= job.finished_at < until:
            continue
        index = int((job.finished_at - first) // size)
        buckets[min(index, count - 1)].add(job)
        total.add(job)
    return buckets, total


def bucket_count(since: float, until: float, size: float) -> int:
    return max(1, math.ceil((until - bucket_start(since, size)) / size))
