"""Quota rules: budget periods, what is left of a budget, and why a claim may not start. Pure: no I/O, no clock.

A quota belongs to an owner, or to one project of an owner. It may hold three budgets for one period -- items,
tokens and cost -- and a cap on the owner's items running at once. Periods are calendar periods in UTC: ``day``
resets at 00:00 UTC, ``month`` on the 1st at 00:00 UTC; ``total`` never resets (a balance, topped up by raising
it).

- **Items** are counted when an item *starts for the first time*; its retries do not count again. The budget is
  exact: a claim takes at most what is left, so no item beyond the limit starts.
- **Tokens** and **cost** are known only after an item's request, so they are checked before each claim: once
  spent, nothing more starts, but items already running finish and are counted. The overshoot is bounded by what
  was in flight when the budget ran out (with ``max_running`` set: at most that many items' worth).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, get_args

Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = get_args(Period)
OWNER_WIDE = ""  # the ``project`` of a quota that covers every project of its owner


class Budget(StrEnum):
    ITEMS = "items"
    TOKENS = "tokens"
    COST = "cost"


def period_key(period: Period, now: float) -> str:
    """The usage bucket ``now`` falls in: ``total``, ``d:2026-12-01`` or ``m:2026-12``."""
    if period == "total":
        return "total"
    at = datetime.fromtimestamp(now, UTC)
    return f"d:{at:%Y-%m-%d}" if period == "day" else f"m:{at:%Y-%m}"


def period_bounds(period: Period, now: float) -> tuple[float | None, float | None]:
    """When the period holding ``now`` began and when it ends (epoch seconds, UTC); None for ``total``."""
    if period == "total":
        return None, None
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = datetime(at.year, at.month, at.day, tzinfo=UTC)
        return start.timestamp(), start.timestamp() + 86400.0
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    days = calendar.monthrange(at.year, at.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400.0


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """One quota's limits; None means no limit of that kind."""

    owner: str
    project: str = OWNER_WIDE
    period: Period = "total"
    items: int | None = None
    tokens: int | None = None
    cost: float | None = None
    max_running: int | None = None

    @property
    def scope(self) -> str:
        return self.owner if self.project == OWNER_WIDE else f"{self.owner}/{self.project}"

    @property
    def has_budget(self) -> bool:
        return self.items is not None or self.tokens is not None or self.cost is not None


@dataclass(frozen=True, slots=True)
class Usage:
    items: int = 0
    tokens: int = 0
    cost: float = 0.0


def items_left(limits: QuotaLimits, used: Usage) -> int | None:
    """How many more items may start this period; None when items are not budgeted."""
    return None if limits.items is None else max(0, limits.items - used.items)


def spent_budget(limits: QuotaLimits, used: Usage) -> Budget | None:
    """The first budget with nothing left (items, then tokens, then cost), or None while every one has some."""
    if limits.items is not None and used.items >= limits.items:
        return Budget.ITEMS
    if limits.tokens is not None and used.tokens >= limits.tokens:
        return Budget.TOKENS
    if limits.cost is not None and used.cost >= limits.cost:
        return Budget.COST
    return None


def amount_text(budget: Budget, value: float) -> str:
    """An amount of a budget as people read it: ``12,345`` items or tokens, ``1,234.5`` of cost."""
    return f"{value:,.4f}".rstrip("0").rstrip(".") if budget is Budget.COST else f"{int(value):,}"


def utc_minute(at: float) -> str:
    """``2027-01-01 00:00 UTC``: when a period ends, as the messages and the CLI say it."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def exhausted_message(limits: QuotaLimits, used: Usage, budget: Budget, now: float) -> str:
    """Why a job paused, and what makes it go on: shown as the job's ``status_message`` and in its timeline,
    e.g. ``alice's items budget for this month is spent (1,000 of 1,000); it resumes by itself at ...``."""
    limit = getattr(limits, budget.value)
    spent = getattr(used, budget.value)
    project = f" --project {limits.project}" if limits.project != OWNER_WIDE else ""
    raise_it = f"batchyard quotas set {limits.owner}{project} --{budget.value} N"
    if limits.period == "total":
        what = f"{limits.scope}'s {budget.value} balance"
        after = f"raise it: {raise_it}"
    else:
        _, end = period_bounds(limits.period, now)
        assert end is not None
        resets = utc_minute(end)
        what = f"{limits.scope}'s {budget.value} budget for this {limits.period}"
        after = f"it resumes by itself at {resets}, or when the budget is raised ({raise_it})"
    return f"{what} is spent ({amount_text(budget, spent)} of {amount_text(budget, limit)}); {after}"


def tokens_of(usage: dict[str, float]) -> int:
    """The tokens an item's usage spent: ``total_tokens`` when reported; else its input and output tokens
    (``input_tokens`` + ``output_tokens``, or ``prompt_tokens`` + ``completion_tokens``); else ``tokens``.
    Detail counters (``cached_tokens``, ``reasoning_tokens``) are parts of those, never added again."""
    if "total_tokens" in usage:
        return int(usage["total_tokens"])
    parts = ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens")
    if any(name in usage for name in parts):
        return int(sum(usage.get(name, 0) for name in parts))
    return int(usage.get("tokens", 0))
