"""Backoff schedule and the ETA estimator (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.backoff import backoff_delay
from batchyard.core.rate import Estimate, Sample, estimate, finished_rate, processed


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
