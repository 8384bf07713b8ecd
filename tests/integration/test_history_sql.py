"""The History page's sums as the database computes them (store.stats.history: GROUP BY and a window function
for the percentiles) equal the pure definition (core/history.summarize), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from batchyard import Batchyard
from batchyard.core.history import DAY, HOUR, Period, summarize
from batchyard.core.records import JobFilter
from batchyard.store.schema import jobs

T0 = 1_764_547_200.0  # midnight UTC

JOB = st.tuples(
    st.sampled_from(["completed", "failed", "cancelled", "expired", "running"]),
    st.integers(0, 500),
    st.integers(0, 500),
    st.floats(0, 10, allow_nan=False).map(lambda c: round(c, 3)),
    st.one_of(st.none(), st.floats(T0 - DAY, T0 + 2 * DAY).map(lambda t: round(t, 3))),
    st.floats(T0 - HOUR, T0 + 2 * DAY + HOUR).map(lambda t: round(t, 3)),
    st.sampled_from(["alice", "bob"]),
)


def _same(sql: Period, pure: Period) -> None:
    assert (sql.start, sql.end, sql.jobs, sql.succeeded, sql.failed) == (
        pure.start,
        pure.end,
        pure.jobs,
        pure.succeeded,
        pure.failed,
    )
    assert sql.cost == pytest.approx(pure.cost) and sql.duration_sum == pytest.approx(pure.duration_sum)
    assert sql.duration_count == pure.duration_count
    for got, want in ((sql.p50_duration, pure.p50_duration), (sql.p95_duration, pure.p95_duration)):
        assert (got is None and want is None) or got == pytest.approx(want, abs=1e-6)


def test_the_database_sums_as_the_definition(app: Batchyard) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        st.lists(JOB, max_size=40),
        st.sampled_from([HOUR, DAY]),
        st.floats(0, DAY),
        st.sampled_from([None, "alice"]),
    )
    def check(rows: list[tuple[object, ...]], size: float, offset: float, owner: str | None) -> None:
        with app.store.db.write() as conn:
            conn.execute(delete(jobs))
            if rows:
                conn.execute(
                    insert(jobs),
                    [
                        {
                            "id": f"job_{i:020x}",
                            "handler": "echo",
                            "owner": who,
                            "status": status,
                            "succeeded": ok,
                            "failed": bad,
                            "cost": cost,
                            "created_at": T0 - 2 * DAY,
                            "started_at": started,
                            "finished_at": None if status == "running" else finished,
                            "max_attempts": 1,
                            "backoff_base_seconds": 1.0,
                            "backoff_max_seconds": 1.0,
                        }
                        for i, (status, ok, bad, cost, started, finished, who) in enumerate(rows)
                    ],
                )
        since, until = T0 + offset - HOUR, T0 + offset + DAY
        where = JobFilter(owner=owner)
        sql_buckets, sql_total = app.store.stats.history(where, since, until, size)
        pure_buckets, pure_total = summarize(app.store.stats.finished_jobs(where, since, until), since, until, size)
        assert len(sql_buckets) == len(pure_buckets)
        for sql, pure in zip(sql_buckets, pure_buckets, strict=True):
            _same(sql, pure)
        _same(sql_total, pure_total)

    check()
