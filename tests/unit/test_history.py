"""The History page's sums: buckets over a range, totals equal to the buckets' sums, percentiles."""

from __future__ import annotations

import itertools
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.history import DAY, HOUR, FinishedJob, bucket_count, bucket_start, percentile, summarize

T0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0 and percentile([1.0, 2.0], 0) == 1.0
    assert percentile([float(i) for i in range(101)], 95) == 95.0


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50))
def test_the_median_is_statistics_median(values: list[float]) -> None:
    assert percentile(sorted(values), 50) == pytest.approx(statistics.median(values))


def test_buckets_by_example() -> None:
    jobs = [
        FinishedJob("completed", 8, 2, 0.5, T0 + 10, T0 + 70),  # 60 s, first hour
        FinishedJob("failed", 0, 5, 0.0, T0 + 100, T0 + 400),  # 300 s, first hour
        FinishedJob("cancelled", 1, 0, 0.25, None, T0 + 2 * HOUR + 5),  # never started: no duration
        FinishedJob("completed", 9, 0, 1.0, T0, T0 + 3 * HOUR),  # at `until`: outside
    ]
    buckets, total = summarize(jobs, T0, T0 + 3 * HOUR, HOUR)
    assert [b.start for b in buckets] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    first, empty, third = buckets
    assert (first.jobs_total, first.jobs["completed"], first.jobs["failed"]) == (2, 1, 1)
    assert (first.succeeded, first.failed, first.cost) == (8, 7, 0.5)
    assert first.success_rate == pytest.approx(8 / 15)
    assert (first.avg_duration, first.p50_duration) == (180.0, 180.0)
    assert first.p95_duration == pytest.approx(60 + 0.95 * 240)
    assert first.items_per_second == pytest.approx(15 / HOUR)
    assert (empty.jobs_total, empty.success_rate, empty.avg_duration, empty.items_per_second) == (0, None, None, 0.0)
    assert (third.jobs["cancelled"], third.duration_count, third.p50_duration) == (1, 0, None)
    assert (total.jobs_total, total.succeeded, total.failed) == (3, 9, 7)


def test_days_start_at_midnight_utc() -> None:
    assert bucket_start(T0 + 5 * HOUR, DAY) == T0
    buckets, _ = summarize([], T0 + 5 * HOUR, T0 + 2 * DAY + HOUR, DAY)
    assert [b.start for b in buckets] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert bucket_count(T0 + 5 * HOUR, T0 + 2 * DAY + HOUR, DAY) == 3


FINISHED = st.builds(
    FinishedJob,
    st.sampled_from(["completed", "failed", "cancelled", "expired"]),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.floats(0, 100),
    st.one_of(st.none(), st.floats(T0 - DAY, T0 + 3 * DAY)),
    st.floats(T0 - DAY, T0 + 4 * DAY),
)


@given(st.lists(FINISHED, max_size=40), st.floats(0, 2 * DAY), st.floats(HOUR, 2 * DAY), st.sampled_from([HOUR, DAY]))
def test_the_totals_are_the_sums_of_the_buckets(
    jobs: list[FinishedJob], offset: float, span: float, size: float
) -> None:
    since = T0 + offset
    until = since + span
    buckets, total = summarize(jobs, since, until, size)
    inside = [j for j in jobs if since <= j.finished_at < until]
    assert total.jobs_total == len(inside) == sum(b.jobs_total for b in buckets)
    assert total.succeeded == sum(b.succeeded for b in buckets) and total.failed == sum(b.failed for b in buckets)
    assert total.duration_count == sum(b.duration_count for b in buckets)
    assert total.duration_sum == pytest.approx(sum(b.duration_sum for b in buckets))
    started = sorted(max(0.0, j.finished_at - j.started_at) for j in inside if j.started_at is not None)
    assert total.p50_duration == percentile(started, 50) and total.p95_duration == percentile(started, 95)
    for b in buckets:  # contiguous, each job in the bucket holding its finish
        assert b.end - b.start == size
    assert all(b.end == nxt.start for b, nxt in itertools.pairwise(buckets))
    assert buckets[0].start <= since and buckets[-1].end >= until
