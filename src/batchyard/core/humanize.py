"""Numbers and times as people read them: "2m ago", "1m 05s", "12.9 MB", "24.7k/s". Pure."""

from __future__ import annotations

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_SIZE_UNITS = ("KB", "MB", "GB", "TB")


def duration(seconds: float | None) -> str:
    """``0.42s``, ``4.2s``, ``42s``, ``1m 05s``, ``2h 03m``, ``3d 04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < MINUTE:
        return f"{whole}s"
    if whole < HOUR:
        return f"{whole // MINUTE}m {whole % MINUTE:02d}s"
    if whole < DAY:
        return f"{whole // HOUR}h {whole % HOUR // MINUTE:02d}m"
    return f"{whole // DAY}d {whole % DAY // HOUR:02d}h"


def eta(seconds: float | None) -> str:
    """Time left: like :func:`duration`, but ``<1s`` rather than false precision; ``-`` when unknown."""
    if seconds is None:
        return "-"
    return "<1s" if seconds < 1 else duration(seconds)


def _coarse(seconds: float) -> str:
    whole = int(seconds)
    if whole < MINUTE:
        return f"{whole}s"
    if whole < HOUR:
        return f"{whole // MINUTE}m"
    if whole < DAY:
        return f"{whole // HOUR}h"
    return f"{whole // DAY}d"


def ago(timestamp: float | None, now: float) -> str:
    """A moment relative to ``now``: ``just now``, ``12s ago``, ``2m ago``, ``in 59m``; ``-`` when unknown."""
    if timestamp is None:
        return "-"
    delta = now - timestamp
    if abs(delta) < 2:
        return "just now"
    return f"{_coarse(delta)} ago" if delta > 0 else f"in {_coarse(-delta)}"


def size(n_bytes: int | None) -> str:
    """``512 B``, ``12.9 MB``."""
    if n_bytes is None:
        return "-"
    value = float(n_bytes)
    if value < 1000:
        return f"{int(value)} B"
    for unit in _SIZE_UNITS:
        value /= 1000
        if value < 1000 or unit == _SIZE_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def count(n: int) -> str:
    """``100,000``."""
    return f"{n:,}"


def rate(items_per_second: float | None, unit: str = "") -> str:
    """``0.5/s``, ``42/s``, ``24.7k/s`` (``24.7k items/s`` with a unit); ``-`` when unknown."""
    if items_per_second is None:
        return "-"
    per = f" {unit}/s" if unit else "/s"
    if items_per_second >= 1000:
        return f"{items_per_second / 1000:.1f}k{per}"
    if items_per_second >= 10:
        return f"{items_per_second:.0f}{per}"
    return f"{items_per_second:.1f}{per}"
