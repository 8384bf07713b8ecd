"""Throughput and ETA: the one definition the CLI, the API and the dashboard show. Pure.

- **Processed** items are those a handler finished: succeeded + failed. Cancelled (and skipped) items never
  count: cancelling a job is not work done.
- **Partial** progress: what running items reported with ``ctx.progress(done, total)``, as items' worth of work
  (each item's done / total, within [0, 1], summed: one item half done is 0.5). It counts as work done in the
  rate, the ETA and the percent, so a job of one long item moves 0 -> 50 -> 100 % instead of jumping at the end.
  Items that report no total (or nothing) add nothing until they finish.
- **Progress** at a moment = processed + partial. A job's ``percent`` is (processed + cancelled + partial) /
  total (:func:`percent`).
- **Rate** (items per second) of a job still going: progress (processed + partial) over the last
  :data:`RECENT_WINDOW_SECONDS` of its progress samples, from the oldest sample in the window to the newest. A
  job that speeds up (a second worker joins) shows its recent speed, not its lifetime average. With fewer than
  two samples in the window, or none of them apart in time, it is unknown (None).
- **ETA** (seconds): work left (queued + running - partial, :func:`remaining`) over that rate. Unknown (None) when
  the rate is unknown or zero (no progress in the window), when no live worker serves the job, and for a paused
  or finished job.
- **Finished job**: the rate shown is processed / (finished_at - started_at), its whole run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RECENT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    processed: float  # succeeded + failed so far, plus running items' partial progress


@dataclass(frozen=True)
class Estimate:
    items_per_second: float | None
    eta_seconds: float | None


def processed(succeeded: int, failed: int) -> int:
    """Items a handler finished (cancelled items are not processed)."""
    return succeeded + failed


def fraction(done: float, total: float | None) -> float | None:
    """How much of one item is done by its report: done / total within [0, 1]; None without a total."""
    if not total or total <= 0:
        return None
    return min(1.0, max(0.0, done / total))


def remaining(queued: int, running: int, partial: float = 0.0) -> float:
    """Work left: items not finished, less what the running ones already did (never below 0)."""
    return max(0.0, queued + running - min(partial, float(running)))


def percent(finished: int, total: int, partial: float = 0.0) -> float:
    """Percent done: finished items (succeeded, failed, cancelled) and running items' partial progress, over the
    total (100 for an empty job), rounded to 2 places and never above 100."""
    if not total:
        return 100.0
    return round(min(100.0, 100.0 * (finished + partial) / total), 2)


def estimate(
    samples: Sequence[Sample],
    remaining: float,
    *,
    window: float = RECENT_WINDOW_SECONDS,
    workers_alive: int | None = None,
) -> Estimate:
    """Rate over the last ``window`` seconds of samples, and the ETA of ``remaining`` work (items, see
    :func:`remaining`) at that rate.

    With fewer than two samples in the window, or no progress in it, the rate is unknown (None) or 0 and the
    ETA is None; with nothing remaining the ETA is 0. ``workers_alive=0`` (nothing serves the job) also makes the
    ETA None: nothing is going to finish it.
    """
    rate = _rate(samples, window)
    if remaining <= 0:
        return Estimate(rate, 0.0)
    if rate is None or rate <= 0 or workers_alive == 0:
        return Estimate(rate, None)
    return Estimate(rate, remaining / rate)


def finished_rate(processed: int, started_at: float | None, finished_at: float | None) -> float | None:
    """A finished job's rate: processed items over its whole run (None without a run of positive length)."""
    if started_at is None or finished_at is None or finished_at <= started_at:
        return None
    return processed / (finished_at - started_at)


def _rate(samples: Sequence[Sample], window: float) -> float | None:
    if len(samples) < 2:
        return None
    ordered = sorted(samples, key=lambda s: s.at)
    newest = ordered[-1]
    in_window = [s for s in ordered if newest.at - s.at <= window]
    if len(in_window) < 2:
        return None
    oldest = in_window[0]
    span = newest.at - oldest.at
    if span <= 0:
        return None
    return max(0.0, (newest.processed - oldest.processed) / span)
