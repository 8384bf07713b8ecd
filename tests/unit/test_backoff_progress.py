"""Backoff schedule and the ETA estimator (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.backoff import backoff_delay
from batchyard.core.rate import Estimate, Sample, estimate, finished_rate, fraction, percent, processed, remaining


def test_backoff_doubles_with_jitter_and_caps() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 60.0)]:
        delays = [backoff_delay(attempt, base_seconds=1.0, max_seconds=60.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one fixed value


def test_retry_after_wins_when_longer_but_stays_capped() -> None:
    assert backoff_delay(1, base_seconds=1, max_seconds=60, retry_after=30) == 30
    assert backoff_delay(1, base_seconds=1, max_seconds=60, retry_after=600) == 60
    assert backoff_delay(5, base_seconds=1, max_seconds=60, retry_after=0.001) >= 8


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, base_seconds=1, max_seconds=2)


@given(st.integers(1, 10_000), st.floats(0, 100), st.floats(0, 10_000))
def test_backoff_is_always_within_bounds(attempt: int, base: float, cap: float) -> None:
    delay = backoff_delay(attempt, base_seconds=base, max_seconds=cap)
    assert 0 <= delay <= max(cap, 0)


def test_eta_from_a_recent_window() -> None:
    samples = [Sample(0, 0), Sample(10, 100), Sample(20, 200)]
    est = estimate(samples, remaining=800)
    assert est.items_per_second == pytest.approx(10.0)
    assert est.eta_seconds == pytest.approx(80.0)


def test_eta_uses_only_the_recent_window() -> None:
    # Slow start long ago, fast lately: the ETA follows the recent rate.
    samples = [Sample(0, 0), Sample(1000, 10), Sample(1030, 310), Sample(1060, 610)]
    est = estimate(samples, remaining=1000, window=60)
    assert est.items_per_second == pytest.approx(10.0)
    assert est.eta_seconds == pytest.approx(100.0)


def test_eta_unknown_without_progress_and_zero_when_done() -> None:
    assert estimate([Sample(0, 5)], remaining=10).eta_seconds is None
    assert estimate([Sample(0, 5), Sample(30, 5)], remaining=10).eta_seconds is None
    assert estimate([Sample(0, 5), Sample(30, 15)], remaining=0).eta_seconds == 0.0


@given(st.lists(st.tuples(st.floats(0, 1e6), st.integers(0, 10**6)), min_size=2, max_size=30), st.integers(0, 10**6))
def test_estimate_never_negative(points: list[tuple[float, int]], remaining: int) -> None:
    est = estimate([Sample(at, done) for at, done in points], remaining)
    assert est.items_per_second is None or est.items_per_second >= 0
    assert est.eta_seconds is None or est.eta_seconds >= 0


def test_a_rate_counts_processed_items_only() -> None:
    # A cancelled job: 30 processed in 10 s, 70 cancelled at the end. Cancelled items are not work.
    assert processed(succeeded=25, failed=5) == 30
    assert finished_rate(processed(25, 5), started_at=100.0, finished_at=110.0) == pytest.approx(3.0)
    assert finished_rate(0, started_at=None, finished_at=110.0) is None
    assert finished_rate(5, started_at=110.0, finished_at=110.0) is None


def test_a_job_that_speeds_up_gets_its_eta_from_the_recent_window() -> None:
    # 100 items in the first 540 s, then a second worker: 600 in the last 60 s. The lifetime average (700 in
    # 600 s) would say ~257 s for 300 left; the recent window says 30 s.
    samples = [Sample(0, 0), Sample(540, 100), Sample(570, 400), Sample(600, 700)]
    est = estimate(samples, remaining=300, window=60)
    assert est.items_per_second == pytest.approx(10.0)
    assert est.eta_seconds == pytest.approx(30.0)


def test_no_eta_without_a_live_worker_or_without_samples_in_the_window() -> None:
    samples = [Sample(0, 0), Sample(30, 300)]
    assert estimate(samples, remaining=10, workers_alive=0) == Estimate(10.0, None)
    assert estimate(samples, remaining=10, workers_alive=1).eta_seconds == pytest.approx(1.0)
    assert estimate([Sample(0, 0), Sample(100, 50)], remaining=10, window=60) == Estimate(None, None)


# -- partial progress of running items (ctx.progress) ---------------------------------------------------------


def test_an_items_fraction_is_done_over_total_within_0_and_1() -> None:
    assert fraction(5, 10) == 0.5
    assert fraction(12, 10) == 1.0  # a handler that overshoots its own total is done, not 120 %
    assert fraction(-1, 10) == 0.0
    assert fraction(7, None) is None  # no total: a message and a count, but no fraction
    assert fraction(7, 0) is None


def test_a_one_item_job_half_done_shows_50_percent() -> None:
    assert percent(0, 1, 0.5) == 50.0
    assert percent(3, 10, 0.25) == 32.5
    assert percent(0, 0) == 100.0
    assert percent(10, 10, 0.9) == 100.0  # never above 100


def test_work_left_subtracts_what_running_items_did() -> None:
    assert remaining(0, 1, 0.5) == 0.5
    assert remaining(10, 2, 1.5) == 10.5
    assert remaining(10, 2, 5.0) == 10.0  # running items cannot have done more than all of themselves
    assert remaining(0, 0, 0.0) == 0.0


def test_rate_and_eta_of_a_one_item_job_from_its_partial_progress() -> None:
    # One long item reporting 10 % every 6 s: samples carry processed + partial.
    samples = [Sample(0.0, 0.0), Sample(6.0, 0.1), Sample(12.0, 0.2), Sample(18.0, 0.3)]

    est = estimate(samples, remaining(0, 1, 0.3))

    assert est.items_per_second == pytest.approx(0.3 / 18)
    assert est.eta_seconds == pytest.approx(42.0)  # 0.7 of the item left at 1/60 item/s


def test_an_item_finishing_after_its_progress_does_not_jump_the_rate() -> None:
    # 0.9 reported, then the item ends: processed 1 and partial 0, progress 0.9 -> 1.0 (no double count).
    samples = [Sample(0.0, 0.0), Sample(9.0, 0.9), Sample(10.0, 1.0)]
    est = estimate(samples, remaining(4, 0))
    assert est.items_per_second == pytest.approx(0.1)
    assert est.eta_seconds == pytest.approx(40.0)


@given(
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.lists(st.floats(0, 1), max_size=50),
)
def test_partial_progress_keeps_percent_and_work_left_in_range(finished: int, queued: int, parts: list[float]) -> None:
    running = len(parts)
    total = finished + queued + running
    part = sum(parts)
    assert 0.0 <= percent(finished, total, part) <= 100.0
    assert percent(finished, total, part) >= percent(finished, total) - 0.01  # partial only adds
    left = remaining(queued, running, part)
    assert queued <= left + 1e-9 <= queued + running + 1e-9
