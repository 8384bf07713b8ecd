"""Throughput and ETA from progress samples (a recent-window rate). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RECENT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    done: int  # items in a terminal state


@dataclass(frozen=True)
class Estimate:
    items_per_second: float | None
    eta_seconds: float | None


def estimate(samples: Sequence[Sample], remaining: int, *, window: float = RECENT_WINDOW_SECONDS) -> Estimate:
    """Rate over the last ``window`` seconds of samples (oldest sample in the window to the newest).

    With fewer than two samples, or no progress in the window, the rate is unknown (None) and so is the ETA;
    with nothing remaining the ETA is 0.
    """
    if remaining <= 0:
        rate = _rate(samples, window)
        return Estimate(rate, 0.0)
    rate = _rate(samples, window)
    if rate is None or rate <= 0:
        return Estimate(rate, None)
    return Estimate(rate, remaining / rate)


def _rate(samples: Sequence[Sample], window: float) -> float | None:
    if len(samples) < 2:
        return None
    ordered = sorted(samples, key=lambda s: s.at)
    newest = ordered[-1]
    in_window = [s for s in ordered if newest.at - s.at <= window]
    oldest = in_window[0] if len(in_window) >= 2 else ordered[-2]
    span = newest.at - oldest.at
    if span <= 0:
        return None
    return max(0.0, (newest.done - oldest.done) / span)
