"""core/durations.py: the ages `prune --older-than` takes."""

from __future__ import annotations

import pytest

from batchyard.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("0s", 0),
        ("1.5h", 5400),
        (" 7D ", 7 * 86400),
    ],
)
def test_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "30 days", "-1d", "3x", "", "1e400d", "1d2h"])
def test_anything_else_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"30d, 12h, 90m, 45s or 2w|too long"):
        parse_duration(text)


def test_format_picks_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (30 * 86400, 14 * 86400, 5400, 45, 0, 1.5)] == [
        "30d",
        "2w",
        "90m",
        "45s",
        "0s",
        "1.5s",
    ]
