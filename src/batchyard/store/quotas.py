"""Quotas in SQL: the rows, the usage buckets, the claim-time check, and the pauses and resumes they cause.

The rules (periods, what is left, the messages) are in :mod:`batchyard.core.quotas`. Exactness of item budgets
comes from the claim's transaction: the quota rows are locked (``FOR UPDATE`` on PostgreSQL; SQLite's one writer
at a time does the same), what is left is read, at most that many items start, and their count is added to the
usage buckets before the lock is let go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select, update

from batchyard import metrics
from batchyard.core.lifecycle import ACTIVE_JOB_STATUSES, CLAIMABLE_JOB_STATUSES, JobStatus, StatusReason
from batchyard.core.quotas import (
    OWNER_WIDE,
    PERIODS,
    Budget,
    QuotaLimits,
    Usage,
    exhausted_message,
    items_left,
    period_key,
    spent_budget,
)
from batchyard.store.engine import Database
from batchyard.store.schema import jobs, quota_usage, quotas
from batchyard.store.timeline import add_event
from batchyard.store.wakeups import Wakeups

QUOTA_ACTOR = "quota"


@dataclass(frozen=True, slots=True)
class Allowance:
    """What the quotas of a job's owner allow one claim: at most ``limit`` items (None: no limit), or nothing
    because ``spent`` says which budget is gone (the scope pauses) or ``full`` says the owner already runs as many
    items as ``max_running`` lets it (the job waits, unpaused)."""

    quotas: tuple[QuotaLimits, ...]
    limit: int | None = None
    spent: tuple[QuotaLimits, Usage, Budget] | None = None
    full: QuotaLimits | None = None
    left: tuple[tuple[QuotaLimits, int], ...] = ()  # item budgets and what was left of each before the claim


def _limits(row: Any) -> QuotaLimits:
    return QuotaLimits(
        owner=row.owner,
        project=row.project,
        period=row.period,
        items=row.max_items,
        tokens=row.max_tokens,
        cost=row.max_cost,
        max_running=row.max_running,
    )


def quota_scope(table: Any, limits: QuotaLimits) -> Any:
    """The rows of ``table`` (jobs or quota_usage) a quota covers."""
    if limits.project == OWNER_WIDE:
        return table.c.owner == limits.owner
    return and_(table.c.owner == limits.owner, table.c.project == limits.project)


def outside_scope(limits: QuotaLimits) -> Any:
    """The jobs a quota does not cover (NULL-safe: a job without a project is outside a project's quota)."""
    if limits.project == OWNER_WIDE:
        return jobs.c.owner != limits.owner
    return or_(jobs.c.owner != limits.owner, jobs.c.project.is_(None), jobs.c.project != limits.project)


def applicable(conn: Connection, owner: str, project: str | None, *, lock: bool = False) -> list[QuotaLimits]:
    """The quotas over a job of ``owner`` in ``project``: the owner's own, and its project's (in that order)."""
    projects = [OWNER_WIDE] if not project else [OWNER_WIDE, project]
    query = select(quotas).where(quotas.c.owner == owner, quotas.c.project.in_(projects)).order_by(quotas.c.project)
    if lock:
        query = query.with_for_update()
    return [_limits(row) for row in conn.execute(query)]


def used(conn: Connection, limits: QuotaLimits, now: float) -> Usage:
    key = period_key(limits.period, now)
    row = conn.execute(
        select(
            func.coalesce(func.sum(quota_usage.c["items"]), 0),
            func.coalesce(func.sum(quota_usage.c.tokens), 0),
            func.coalesce(func.sum(quota_usage.c.cost), 0.0),
        ).where(quota_scope(quota_usage, limits), quota_usage.c.period_key == key)
    ).one()
    return Usage(items=int(row[0]), tokens=int(row[1]), cost=float(row[2]))


def running(conn: Connection, limits: QuotaLimits) -> int:
    """Items of the quota's scope running now (the jobs' counters; no scan of items)."""
    n = conn.execute(
        select(func.coalesce(func.sum(jobs.c.running), 0)).where(
            quota_scope(jobs, limits), jobs.c.status.in_(ACTIVE_JOB_STATUSES)
        )
    ).scalar()
    return int(n or 0)


def allowance(conn: Connection, owner: str, project: str | None, now: float) -> Allowance | None:
    """What may start for a job of ``owner``/``project`` now; None when no quota applies (the common case: one
    primary-key lookup). Locks the quota rows until the claim's transaction ends."""
    found = applicable(conn, owner, project, lock=True)
    if not found:
        return None
    limit: int | None = None
    left: list[tuple[QuotaLimits, int]] = []
    for limits in found:
        if limits.has_budget:
            spent_so_far = used(conn, limits, now)
            budget = spent_budget(limits, spent_so_far)
            if budget is not None:
                return Allowance(tuple(found), spent=(limits, spent_so_far, budget))
            n = items_left(limits, spent_so_far)
            if n is not None:
                left.append((limits, n))
                limit = n if limit is None else min(limit, n)
        if limits.max_running is not None:
            room = limits.max_running - running(conn, limits)
            if room <= 0:
                return Allowance(tuple(found), full=limits)
            limit = room if limit is None else min(limit, room)
    return Allowance(tuple(found), limit=limit, left=tuple(left))


def add_usage(
    conn: Connection,
    postgres: bool,
    owner: str,
    project: str | None,
    now: float,
    *,
    items: int = 0,
    tokens: int = 0,
    cost: float = 0.0,
) -> None:
    """Add to the owner's usage in every period bucket ``now`` falls in."""
    if not (items or tokens or cost):
        return
    stmt: Any
    if postgres:  # imported here: a SQLite process never loads the PostgreSQL dialect
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(quota_usage)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(quota_usage)
    stmt = stmt.on_conflict_do_update(
        index_elements=[quota_usage.c.owner, quota_usage.c.project, quota_usage.c.period_key],
        set_={
            "items": quota_usage.c["items"] + stmt.excluded["items"],
            "tokens": quota_usage.c.tokens + stmt.excluded.tokens,
            "cost": quota_usage.c.cost + stmt.excluded.cost,
        },
    )
    conn.execute(
        stmt,
        [
            {
                "owner": owner,
                "project": project or OWNER_WIDE,
                "period_key": period_key(period, now),
                "items": items,
                "tokens": tokens,
                "cost": cost,
            }
            for period in PERIODS
        ],
    )


def pause_scope(conn: Connection, limits: QuotaLimits, spent: Usage, budget: Budget, now: float) -> list[str]:
    """Pause every job of the quota's scope that still has items to start, with ``quota_exhausted`` and a
    ``paused`` event saying why. Jobs already paused (by a person, a handler) or stopping are left alone; items
    already running finish. Returns the jobs paused."""
    message = exhausted_message(limits, spent, budget, now)
    waiting = (quota_scope(jobs, limits), jobs.c.status.in_(CLAIMABLE_JOB_STATUSES), jobs.c.queued > 0)
    # Only jobs no other transaction holds (PostgreSQL): a job another worker is claiming right now is paused by
    # that claim itself, which reads the spent budget once this transaction lets the quota row go. Waiting for its
    # row here, while holding the quota row it waits for, would deadlock.
    free = list(conn.execute(select(jobs.c.id).where(*waiting).with_for_update(skip_locked=True)).scalars())
    if not free:
        return []
    paused = list(
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(free), *waiting)
            .values(
                status=JobStatus.PAUSED,
                status_reason=StatusReason.QUOTA_EXHAUSTED,
                status_message=message,
                last_activity_at=now,
            )
            .returning(jobs.c.id)
        ).scalars()
    )
    data = {"reason": StatusReason.QUOTA_EXHAUSTED.value, "message": message, "budget": budget.value}
    data["quota"] = limits.scope
    for job_id in paused:
        add_event(conn, job_id, now, "paused", actor=QUOTA_ACTOR, message=message, data=data)
        metrics.record_quota_pause(budget.value)
    return paused


def after_claim(conn: Connection, allowance: Allowance, started: int, now: float) -> list[str]:
    """Once ``started`` items began under ``allowance``: pause the scope of an item budget this claim used up."""
    paused: list[str] = []
    for limits, left in allowance.left:
        if started and left - started <= 0:
            spent = used(conn, limits, now)
            paused += pause_scope(conn, limits, spent, Budget.ITEMS, now)
    return paused


class QuotaStore:
    """``store.quotas``: quota rows, usage, and resuming what a spent budget paused."""

    def __init__(self, db: Database, wakeups: Wakeups) -> None:
        self.db = db
        self.wakeups = wakeups

    def get(self, owner: str, project: str | None = None) -> QuotaLimits | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(quotas).where(quotas.c.owner == owner, quotas.c.project == (project or OWNER_WIDE))
            ).first()
        return None if row is None else _limits(row)

    def list_quotas(self, owner: str | None = None) -> list[QuotaLimits]:
        query = select(quotas).order_by(quotas.c.owner, quotas.c.project)
        if owner is not None:
            query = query.where(quotas.c.owner == owner)
        with self.db.read() as conn:
            return [_limits(row) for row in conn.execute(query)]

    def status(self, limits: QuotaLimits) -> tuple[Usage, int, int, float]:
        """What the quota's scope used this period, runs now, how many of its jobs a spent budget paused, and
        the database's clock it was read at."""
        with self.db.read() as conn:
            now = self.db.now(conn)
            paused = conn.execute(
                select(func.count()).where(
                    quota_scope(jobs, limits),
                    jobs.c.status == JobStatus.PAUSED,
                    jobs.c.status_reason == StatusReason.QUOTA_EXHAUSTED,
                )
            ).scalar()
            return used(conn, limits, now), running(conn, limits), int(paused or 0), now

    def put(self, limits: QuotaLimits, *, actor: str | None) -> list[str]:
        """Create or replace a quota; jobs it no longer holds back resume at once. Returns the jobs resumed."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            values = {
                "period": limits.period,
                "max_items": limits.items,
                "max_tokens": limits.tokens,
                "max_cost": limits.cost,
                "max_running": limits.max_running,
                "updated_at": now,
                "updated_by": actor,
            }
            changed = conn.execute(
                update(quotas)
                .where(quotas.c.owner == limits.owner, quotas.c.project == limits.project)
                .values(**values)
            ).rowcount
            if not changed:
                conn.execute(insert(quotas).values(owner=limits.owner, project=limits.project, **values))
        # Resumed in a transaction of its own: claims lock a job, then its quota; holding the quota row while
        # locking jobs would be the other order.
        with self.db.write() as conn:
            resumed = self._resume(conn, self.db.now(conn), limits.owner, "the quota was changed")
        if resumed:
            self.wakeups.after_commit_wake()
        return resumed

    def delete(self, owner: str, project: str | None = None) -> tuple[bool, list[str]]:
        with self.db.write() as conn:
            gone = conn.execute(
                delete(quotas).where(quotas.c.owner == owner, quotas.c.project == (project or OWNER_WIDE))
            ).rowcount
        resumed: list[str] = []
        if gone:  # in a transaction of its own, as in put()
            with self.db.write() as conn:
                resumed = self._resume(conn, self.db.now(conn), owner, "the quota was removed")
        if resumed:
            self.wakeups.after_commit_wake()
        return bool(gone), resumed

    def resume_due(self) -> list[str]:
        """Maintenance: resume jobs whose spent budget has room again (a new period began, or a quota went
        away). Cheap when nothing is paused for a quota: one indexed query."""
        with self.db.read() as conn:
            waiting = conn.execute(
                select(jobs.c.id)
                .where(jobs.c.status == JobStatus.PAUSED, jobs.c.status_reason == StatusReason.QUOTA_EXHAUSTED)
                .limit(1)
            ).first()
        if waiting is None:
            return []
        with self.db.write() as conn:
            now = self.db.now(conn)
            resumed = self._resume(conn, now, None, "a new quota period began")
        if resumed:
            self.wakeups.after_commit_wake()
        return resumed

    def _resume(self, conn: Connection, now: float, owner: str | None, why: str) -> list[str]:
        query = select(jobs.c.owner, jobs.c.project).where(
            jobs.c.status == JobStatus.PAUSED, jobs.c.status_reason == StatusReason.QUOTA_EXHAUSTED
        )
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        resumed: list[str] = []
        for job_owner, project in set(conn.execute(query.distinct()).all()):
            if any(
                limits.has_budget and spent_budget(limits, used(conn, limits, now)) is not None
                for limits in applicable(conn, job_owner, project)
            ):
                continue
            resumed += self._resume_jobs(conn, job_owner, project, now, why)
        if resumed:
            self.wakeups.wake_workers(conn)
        return resumed

    def _resume_jobs(self, conn: Connection, owner: str, project: str | None, now: float, why: str) -> list[str]:
        in_project = jobs.c.project.is_(None) if project is None else jobs.c.project == project
        ids = list(
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.owner == owner,
                    in_project,
                    jobs.c.status == JobStatus.PAUSED,
                    jobs.c.status_reason == StatusReason.QUOTA_EXHAUSTED,
                )
                .values(
                    status=case((jobs.c.started_at.is_(None), JobStatus.QUEUED), else_=JobStatus.RUNNING),
                    status_reason=None,
                    status_message=None,
                    last_activity_at=now,
                )
                .returning(jobs.c.id)
            ).scalars()
        )
        for job_id in ids:
            add_event(conn, job_id, now, "resumed", actor=QUOTA_ACTOR, message=f"quota has room again: {why}")
        return ids

    def prune_usage(self, keep_days: int = 8, keep_months: int = 14) -> int:
        """Drop day buckets older than ``keep_days`` and month buckets older than ``keep_months``."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            oldest_day = period_key("day", now - keep_days * 86400.0)
            oldest_month = period_key("month", now - keep_months * 31 * 86400.0)
            return int(
                conn.execute(
                    delete(quota_usage).where(
                        or_(
                            and_(quota_usage.c.period_key.like("d:%"), quota_usage.c.period_key < oldest_day),
                            and_(quota_usage.c.period_key.like("m:%"), quota_usage.c.period_key < oldest_month),
                        )
                    )
                ).rowcount
            )


__all__ = [
    "Allowance",
    "QuotaStore",
    "add_usage",
    "after_claim",
    "allowance",
    "outside_scope",
    "pause_scope",
    "quota_scope",
]
