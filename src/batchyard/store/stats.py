"""Store: aggregates over the jobs table for the stats cards, and the reads behind the live change feed.

Every query here is O(jobs), never a scan of items: the numbers come from the counters that completions keep
on each job row (``total``, ``succeeded``, ``busy_seconds``, ``cost``, ``usage`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Integer, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from batchyard.core.history import FINISHED_STATUSES, FinishedJob, Period, empty_buckets, percentile_ranks
from batchyard.core.lifecycle import TERMINAL_JOB_STATUSES, JobStatus
from batchyard.core.records import ITEM_COUNTERS, JobFilter, JobRecord, StatsBucket, StatsFilter, StatsSnapshot
from batchyard.store.engine import Database
from batchyard.store.jobs import job_conditions
from batchyard.store.schema import job_usage, jobs, progress_samples


class StatsStore:
    """``store.stats``: aggregates for the stats cards and the change feed's reads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- stats ----------------------------------------------------------------------------------------------

    def job_stats(self, where: StatsFilter, *, recent_seconds: float, throughput_seconds: float) -> StatsSnapshot:
        """Aggregates per (project, handler), read in one transaction with three GROUP BY queries.

        Throughput counts the items that succeeded or failed in the last ``throughput_seconds``, per job: its
        counters now minus its last progress sample taken before the window began (0 for a job that started
        inside the window). Only jobs active inside the window are looked at (``ix_jobs_activity``), one
        indexed sample lookup each. Why not only the counters of jobs that finished recently: a job running
        for hours would count either all of its items or none. Why not only samples: they are taken every few
        seconds while a job runs, so the items finished after a job's last sample would be missed; the
        counters are exact. Cancelled items are left out, so cancelling a million queued items is not
        "throughput". A job with no sample before the window falls back to its first sample inside it.
        """
        with self.db.read() as conn:
            now = self.db.now(conn)
            conditions = _conditions(where)
            buckets: dict[tuple[str | None, str], StatsBucket] = {}

            def bucket(project: str | None, handler: str) -> StatsBucket:
                key = (project, handler)
                if key not in buckets:
                    buckets[key] = StatsBucket(project, handler)
                return buckets[key]

            recent = jobs.c.last_activity_at >= now - recent_seconds
            finished = jobs.c.succeeded + jobs.c.failed
            totals = (
                select(
                    jobs.c.project,
                    jobs.c.handler,
                    jobs.c.status,
                    func.count(),
                    *(func.coalesce(func.sum(getattr(jobs.c, name)), 0) for name in ITEM_COUNTERS),
                    func.coalesce(func.sum(jobs.c.busy_seconds), 0.0),
                    func.coalesce(func.sum(case((recent, jobs.c.busy_seconds), else_=0.0)), 0.0),
                    func.coalesce(func.sum(case((recent, finished), else_=0)), 0),
                    func.coalesce(func.sum(jobs.c.cost), 0.0),
                )
                .where(*conditions)
                .group_by(jobs.c.project, jobs.c.handler, jobs.c.status)
            )
            for row in conn.execute(totals):
                project, handler, status, count, *rest = row
                b = bucket(project, handler)
                b.jobs_by_status[status] = b.jobs_by_status.get(status, 0) + int(count)
                for name, value in zip(ITEM_COUNTERS, rest[: len(ITEM_COUNTERS)], strict=True):
                    b.items[name] += int(value)
                busy, recent_busy, recent_finished, cost = rest[len(ITEM_COUNTERS) :]
                b.busy_seconds += float(busy)
                b.recent_busy_seconds += float(recent_busy)
                b.recent_finished += int(recent_finished)
                b.cost += float(cost)

            for project, handler, name, amount in conn.execute(self._usage_query(conditions)):
                usage = bucket(project, handler).usage
                usage[name] = usage.get(name, 0.0) + float(amount or 0.0)

            throughput = _throughput_query(conditions, now - throughput_seconds, postgres=self.db.is_postgres)
            for project, handler, items, first_start in conn.execute(throughput):
                b = bucket(project, handler)
                b.window_finished = int(items or 0)
                b.window_first_start = first_start
        ordered = sorted(buckets.values(), key=lambda b: (b.project or "", b.handler))
        return StatsSnapshot(now, recent_seconds, throughput_seconds, ordered)

    def _usage_query(self, conditions: list[ColumnElement[bool]]) -> Any:
        """Usage counters summed by the database over the narrow job_usage rows of the matching jobs."""
        return (
            select(jobs.c.project, jobs.c.handler, job_usage.c.name, func.sum(job_usage.c.amount))
            .select_from(job_usage.join(jobs, jobs.c.id == job_usage.c.job_id))
            .where(*conditions)
            .group_by(jobs.c.project, jobs.c.handler, job_usage.c.name)
        )

    # -- history ------------------------------------------------------------------------------------------

    def finished_jobs(self, where: JobFilter, since: float, until: float) -> list[FinishedJob]:
        """The counters of the jobs matching ``where`` that finished in [since, until): one narrow row each (for
        checks; the History page reads :meth:`history`, which sums in the database)."""
        stmt = select(
            jobs.c.status, jobs.c.succeeded, jobs.c.failed, jobs.c.cost, jobs.c.started_at, jobs.c.finished_at
        ).where(*_finished_in(where, since, until))
        with self.db.read() as conn:
            return [FinishedJob(*row) for row in conn.execute(stmt)]

    def history(self, where: JobFilter, since: float, until: float, size: float) -> tuple[list[Period], Period]:
        """:func:`batchyard.core.history.summarize` computed by the database: sums per (bucket, status) with one
        GROUP BY, and the p50/p95 durations from the rows around those ranks (a window function numbers each
        bucket's durations in order), so only a few rows per bucket leave the database, however many jobs."""
        buckets = empty_buckets(since, until, size)
        first = buckets[0].start
        total = Period(since, until)
        conditions = _finished_in(where, since, until)
        raw = (jobs.c.finished_at - first) / size
        bucket = (func.floor(raw) if self.db.is_postgres else cast(raw, Integer)).label("b")  # raw >= 0 here
        duration = case((jobs.c.finished_at < jobs.c.started_at, 0.0), else_=jobs.c.finished_at - jobs.c.started_at)
        sums = (
            select(
                bucket,
                jobs.c.status,
                func.count(),
                func.coalesce(func.sum(jobs.c.succeeded), 0),
                func.coalesce(func.sum(jobs.c.failed), 0),
                func.coalesce(func.sum(jobs.c.cost), 0.0),
                func.coalesce(func.sum(duration), 0.0),
                func.count(jobs.c.started_at),
            )
            .where(*conditions)
            .group_by(bucket, jobs.c.status)
        )
        with self.db.read() as conn:
            for b, status, n, succeeded, failed, cost, duration_sum, started in conn.execute(sums):
                for period in (buckets[min(int(b), len(buckets) - 1)], total):
                    period.jobs[status] = period.jobs.get(status, 0) + int(n)
                    period.succeeded += int(succeeded)
                    period.failed += int(failed)
                    period.cost += float(cost)
                    period.duration_sum += float(duration_sum)
                    period.duration_count += int(started)
            started_only = [*conditions, jobs.c.started_at.is_not(None)]
            per_bucket = self._ranked(conn, bucket, duration, started_only)
            overall = self._ranked(conn, None, duration, started_only)
        for b, values in per_bucket.items():
            _set_percentiles(buckets[min(b, len(buckets) - 1)], values)
        for values in overall.values():
            _set_percentiles(total, values)
        return buckets, total

    def _ranked(
        self, conn: Connection, bucket: ColumnElement[Any] | None, duration: ColumnElement[Any], conditions: list[Any]
    ) -> dict[int, tuple[int, dict[int, float]]]:
        """Per bucket (or once, with ``bucket`` None): (how many durations, {rank: duration}) for the ranks next to
        the 50th and 95th percentiles."""
        partition = [bucket] if bucket is not None else []
        key = bucket if bucket is not None else literal(0).label("b")
        numbered = (
            select(
                key,
                duration.label("d"),
                (func.row_number().over(partition_by=partition, order_by=duration) - 1).label("i"),
                func.count().over(partition_by=partition).label("n"),
            )
            .where(*conditions)
            .subquery()
        )
        near = [
            and_(
                numbered.c.i >= (numbered.c.n - 1) * (pct / 100.0) - 1,
                numbered.c.i <= (numbered.c.n - 1) * (pct / 100.0) + 1,
            )
            for pct in (50, 95)
        ]
        rows = conn.execute(select(numbered.c.b, numbered.c.i, numbered.c.n, numbered.c.d).where(or_(*near))).all()
        out: dict[int, tuple[int, dict[int, float]]] = {}
        for b, i, n, d in rows:
            out.setdefault(int(b), (int(n), {}))[1][int(i)] = float(d)
        return out

    def recently_finished(self, where: JobFilter, since: float, until: float, limit: int) -> list[JobRecord]:
        """The ``limit`` jobs that finished last in [since, until), latest first."""
        stmt = (
            select(jobs)
            .where(*_finished_in(where, since, until))
            .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [JobRecord.from_row(r) for r in conn.execute(stmt)]

    # -- the change feed ------------------------------------------------------------------------------------

    def database_clock(self) -> float:
        with self.db.read() as conn:
            return self.db.now(conn)

    def recent_activity(self, since: float, limit: int, *, after_id: str | None = None) -> list[tuple[str, float]]:
        """(job id, last_activity_at) of jobs touched at or after ``since``, oldest first (ix_jobs_activity).

        With ``after_id``, continue a page that ended at (``since``, ``after_id``): strictly after it."""
        touched: ColumnElement[bool] = jobs.c.last_activity_at >= since
        if after_id is not None:
            touched = or_(jobs.c.last_activity_at > since, and_(jobs.c.last_activity_at == since, jobs.c.id > after_id))
        with self.db.read() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.last_activity_at)
                .where(touched)
                .order_by(jobs.c.last_activity_at, jobs.c.id)
                .limit(limit)
            ).all()
        return [(job_id, float(at)) for job_id, at in rows]

    def jobs_by_ids(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """The jobs that still exist among ``job_ids`` (in no particular order)."""
        if not job_ids:
            return []
        with self.db.read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(list(job_ids)))).all()
        return [JobRecord.from_row(r) for r in rows]

    def jobs_changed_since(
        self, since: float, *, owner: str | None = None, job_id: str | None = None, limit: int = 500
    ) -> tuple[list[JobRecord], bool]:
        """Jobs changed at or after ``since`` (activity, or result files written), the ``limit`` most recent,
        oldest first; and whether older ones were left out. For replaying a stream after a reconnect."""
        changed = or_(jobs.c.last_activity_at >= since, jobs.c.files_written_at >= since)
        query = select(jobs).where(changed)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if job_id is not None:
            query = query.where(jobs.c.id == job_id)
        order = changed_at_expression()
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(order.desc(), jobs.c.id.desc()).limit(limit + 1)).all()
        records = [JobRecord.from_row(r) for r in rows[:limit]]
        records.reverse()
        return records, len(rows) > limit

    def unfinished_by_handler(self) -> list[tuple[str, str, int, int, int]]:
        """(handler, status, jobs, queued items, running items) of the unfinished jobs, from their counters: one
        ``GROUP BY`` over the jobs in a status that is not terminal (``ix_jobs_claim`` starts with the status)."""
        unfinished = sorted(s.value for s in JobStatus if s not in TERMINAL_JOB_STATUSES)
        query = (
            select(
                jobs.c.handler,
                jobs.c.status,
                func.count(),
                func.coalesce(func.sum(jobs.c.queued), 0),
                func.coalesce(func.sum(jobs.c.running), 0),
            )
            .where(jobs.c.status.in_(unfinished))
            .group_by(jobs.c.handler, jobs.c.status)
        )
        with self.db.read() as conn:
            return [(str(h), str(s), int(n), int(q), int(r)) for h, s, n, q, r in conn.execute(query)]


def _set_percentiles(period: Period, ranked: tuple[int, dict[int, float]]) -> None:
    n, values = ranked
    for pct in (50, 95):
        low, high, fraction = percentile_ranks(n, pct)
        value = values[low] + (values[high] - values[low]) * fraction
        if pct == 50:
            period.p50_duration = value
        else:
            period.p95_duration = value


def _finished_in(where: JobFilter, since: float, until: float) -> list[ColumnElement[bool]]:
    return [
        *job_conditions(where),
        jobs.c.status.in_(FINISHED_STATUSES),
        jobs.c.finished_at >= since,
        jobs.c.finished_at < until,
    ]


def changed_at_expression() -> ColumnElement[float]:
    """When a job last changed as a stream subscriber sees it: activity, or its result files being written."""
    return case(
        (jobs.c.files_written_at > jobs.c.last_activity_at, jobs.c.files_written_at),
        else_=func.coalesce(jobs.c.last_activity_at, jobs.c.created_at),
    )


def _conditions(where: StatsFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.owner is not None:
        conditions.append(jobs.c.owner == where.owner)
    if where.project is not None:
        conditions.append(jobs.c.project == where.project)
    if where.handler is not None:
        conditions.append(jobs.c.handler == where.handler)
    if where.created_since is not None:
        conditions.append(jobs.c.created_at >= where.created_since)
    return conditions


def _throughput_query(conditions: list[ColumnElement[bool]], window_start: float, *, postgres: bool) -> Any:
    """Per (project, handler): items finished since ``window_start`` and the earliest start among those jobs."""
    sample = progress_samples.alias("s")
    sampled_before = (
        select(sample.c.done)
        .where(sample.c.job_id == jobs.c.id, sample.c.at <= window_start)
        .order_by(sample.c.at.desc())
        .limit(1)
        .scalar_subquery()
    )
    sampled_after = (
        select(sample.c.done)
        .where(sample.c.job_id == jobs.c.id, sample.c.at > window_start)
        .order_by(sample.c.at)
        .limit(1)
        .scalar_subquery()
    )
    done_now = jobs.c.succeeded + jobs.c.failed
    started_inside = jobs.c.started_at >= window_start
    # Each expression is used once: PostgreSQL would run a sample subquery again for every reference.
    # Samples count processed items (succeeded + failed; see core/rate.py), like done_now.
    finished_then = func.coalesce(
        sampled_before, case((started_inside, 0), else_=func.coalesce(sampled_after, done_now))
    )
    greatest = func.greatest if postgres else func.max
    delta = greatest(done_now - finished_then, 0)
    return (
        select(jobs.c.project, jobs.c.handler, func.sum(delta), func.min(jobs.c.started_at))
        .where(*conditions, jobs.c.last_activity_at >= window_start, jobs.c.started_at.is_not(None))
        .group_by(jobs.c.project, jobs.c.handler)
    )


__all__ = ["StatsStore"]
