"""The pure quota rules: period buckets and bounds in UTC, what is left, which budget is spent, tokens of a usage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batchyard.core.quotas import (
    Budget,
    QuotaLimits,
    Usage,
    exhausted_message,
    items_left,
    period_bounds,
    period_key,
    spent_budget,
    tokens_of,
)


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_periods_are_calendar_periods_in_utc() -> None:
    now = _at("2026-02-28T23:59:59")
    assert period_key("day", now) == "d:2026-02-28"
    assert period_key("month", now) == "m:2026-02"
    assert period_key("total", now) == "total"
    assert period_key("day", now + 1) == "d:2026-03-01" and period_key("month", now + 1) == "m:2026-03"
    assert period_bounds("day", now) == (_at("2026-02-28T00:00:00"), _at("2026-03-01T00:00:00"))
    assert period_bounds("month", now) == (_at("2026-02-01T00:00:00"), _at("2026-03-01T00:00:00"))
    assert period_bounds("month", _at("2028-02-10T12:00:00"))[1] == _at("2028-03-01T00:00:00")  # a leap year
    assert period_bounds("month", _at("2026-12-31T23:00:00"))[1] == _at("2027-01-01T00:00:00")
    assert period_bounds("total", now) == (None, None)


def test_what_is_left_and_what_is_spent() -> None:
    limits = QuotaLimits("alice", items=10, tokens=500, cost=2.0)
    assert items_left(limits, Usage(items=4)) == 6
    assert items_left(limits, Usage(items=12)) == 0
    assert items_left(QuotaLimits("alice", tokens=5), Usage(items=99)) is None
    assert spent_budget(limits, Usage(items=9, tokens=499, cost=1.99)) is None
    assert spent_budget(limits, Usage(items=10)) is Budget.ITEMS
    assert spent_budget(limits, Usage(tokens=501)) is Budget.TOKENS
    assert spent_budget(limits, Usage(cost=2.0)) is Budget.COST
    assert spent_budget(QuotaLimits("alice", items=0), Usage()) is Budget.ITEMS  # zero allows nothing


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ({"total_tokens": 30, "input_tokens": 20, "output_tokens": 10, "cached_tokens": 5}, 30),
        ({"input_tokens": 20, "output_tokens": 10, "cached_tokens": 5, "reasoning_tokens": 3}, 30),
        ({"prompt_tokens": 7, "completion_tokens": 3}, 10),
        ({"tokens": 42}, 42),
        ({"pages": 3}, 0),
    ],
)
def test_tokens_of_a_usage_never_count_details_twice(usage: dict[str, float], tokens: int) -> None:
    assert tokens_of(usage) == tokens


def test_the_message_says_what_is_spent_and_what_makes_it_go_on() -> None:
    now = _at("2026-12-01T10:00:00")
    monthly = QuotaLimits("alice", project="ads", period="month", cost=25.0)
    message = exhausted_message(monthly, Usage(cost=25.125), Budget.COST, now)
    assert message == (
        "alice/ads's cost budget for this month is spent (25.125 of 25); it resumes by itself at 2027-01-01 00:00 "
        "UTC, or when the budget is raised (batchyard quotas set alice --project ads --cost N)"
    )
    balance = exhausted_message(QuotaLimits("bob", items=1000), Usage(items=1000), Budget.ITEMS, now)
    assert balance == "bob's items balance is spent (1,000 of 1,000); raise it: batchyard quotas set bob --items N"
