"""Durations written as people write them: ``30d``, ``12h``, ``90m``, ``45s``, ``2w``. Pure."""

from __future__ import annotations

import math
import re

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``text``, a number with one unit (s, m, h, d, w). A ValueError says what is accepted."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 30d, 12h, 90m, 45s or 2w")
    seconds = float(found[1]) * UNITS[found[2].lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is too long a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest whole unit that fits: 2592000 -> '30d', 5400 -> '90m'."""
    for unit in ("w", "d", "h", "m"):
        size = UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
