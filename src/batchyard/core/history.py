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
from typing import NamedTuple

HOUR = 3600.0
DAY = 86400.0
BUCKETS = {"hour": HOUR, "day": DAY}
FINISHED_STATUSES = ("completed", "failed", "cancelled", "expired")


class FinishedJob(NamedTuple):
    status: str
    succeeded: int
    failed: int
    cost: float
    started_at: float | None
    finished_at: float


@dataclass(slots=True)
class Period:
    """The numbers of one bucket, or of the whole range. The store sums them in SQL (``store.stats``);
    :func:`summarize` is the same in Python, the definition the SQL is tested against."""

    start: float
    end: float
    jobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED_STATUSES, 0))
    succeeded: int = 0
    failed: int = 0
    cost: float = 0.0
    duration_sum: float = 0.0
    duration_count: int = 0  # jobs that started (a job cancelled before it started has no duration)
    p50_duration: float | None = None
    p95_duration: float | None = None

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
        return self.duration_sum / self.duration_count if self.duration_count else None


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The ``pct`` (0-100) percentile of sorted values, interpolating linearly between the closest ranks."""
    if not ordered:
        return None
    low, high, fraction = percentile_ranks(len(ordered), pct)
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def percentile_ranks(n: int, pct: float) -> tuple[int, int, float]:
    """(lower rank, upper rank, weight of the upper) of the ``pct`` percentile among ``n`` sorted values."""
    rank = (n - 1) * pct / 100.0
    low = math.floor(rank)
    return low, min(low + 1, n - 1), rank - low


def bucket_start(at: float, size: float) -> float:
    """The start of the UTC bucket holding ``at`` (epoch seconds are UTC; a day starts at midnight UTC)."""
    return math.floor(at / size) * size


def bucket_index(at: float, first: float, size: float) -> int:
    """Which bucket (0-based from the one starting at ``first``) holds ``at``; as the store computes it."""
    return math.floor((at - first) / size)


def empty_buckets(since: float, until: float, size: float) -> list[Period]:
    """Every bucket from the one holding ``since`` to the one holding ``until`` (exclusive), empty."""
    first = bucket_start(since, size)
    return [Period(first + i * size, first + (i + 1) * size) for i in range(bucket_count(since, until, size))]


def summarize(jobs: Iterable[FinishedJob], since: float, until: float, size: float) -> tuple[list[Period], Period]:
    """(the buckets of the range, the whole range) from finished jobs; jobs outside [since, until) are ignored."""
    buckets = empty_buckets(since, until, size)
    total = Period(since, until)
    durations: dict[int, list[float]] = {}
    for job in jobs:
        if not since <= job.finished_at < until:
            continue
        index = min(bucket_index(job.finished_at, buckets[0].start, size), len(buckets) - 1)
        for period, key in ((buckets[index], index), (total, -1)):
            period.jobs[job.status] = period.jobs.get(job.status, 0) + 1
            period.succeeded += job.succeeded
            period.failed += job.failed
            period.cost += job.cost
            if job.started_at is not None:
                duration = max(0.0, job.finished_at - job.started_at)
                period.duration_sum += duration
                period.duration_count += 1
                durations.setdefault(key, []).append(duration)
    for key, values in durations.items():
        period = total if key == -1 else buckets[key]
        values.sort()
        period.p50_duration, period.p95_duration = percentile(values, 50), percentile(values, 95)
    return buckets, total


def bucket_count(since: float, until: float, size: float) -> int:
    return max(1, math.ceil((until - bucket_start(since, size)) / size))
