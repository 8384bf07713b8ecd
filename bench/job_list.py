"""The job list on 100,000 jobs: how long a page takes for each filter and sort the dashboard uses, on SQLite and
PostgreSQL, with the job list's indexes and with those it had before migration 0005 (not a test; prints a table).

For each backend it fills a fresh database with jobs straight through SQL (reproducible: a fixed seed; 20 owners,
every status, three handlers, seven projects, tags, descriptions), then times each query through the service
(``JobService.list_jobs``: the SQL and the page's views, what ``GET /api/v1/jobs`` runs) as an admin and as one
owner, plus a deep page (after 20 pages, by cursor), the History page's numbers (``StatsService.history``) and
the count a bulk dry run makes. Then it puts back the
indexes the list had before migration 0005 ((owner, created_at) and (created_at) only) and times them again.

    python bench/job_list.py                          # 100,000 jobs, SQLite and PostgreSQL
    python bench/job_list.py --jobs 20000 --only sqlite --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from batchyard import Batchyard, Settings
from batchyard.core.jobfilter import parse_statuses
from batchyard.core.records import JobFilter, JobQuery
from batchyard.services.auth import Principal, Role

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STATUSES = ["completed"] * 12 + ["failed"] * 2 + ["cancelled"] * 2 + ["queued", "running", "paused", "expired"]
LIST_INDEXES = (
    "ix_jobs_owner_created",
    "ix_jobs_created",
    "ix_jobs_status_created",
    "ix_jobs_owner_status_created",
    "ix_jobs_priority",
    "ix_jobs_total",
)
console = Console(width=max(150, Console().width))


def fill(app: Batchyard, n: int) -> None:
    from sqlalchemy import insert

    from batchyard.store.schema import jobs

    rng = random.Random(12)
    now = time.time()
    rows: list[dict[str, Any]] = []
    for i in range(n):
        created = now - (n - i) * 5
        status = rng.choice(STATUSES)
        total = rng.choice([1, 10, 100, 1000, 10_000])
        finished = status in ("completed", "failed", "cancelled", "expired")
        failed = rng.randint(0, total // 10) if finished else 0
        rows.append(
            {
                "id": f"job_{int(created * 1000):012x}{i:08x}",
                "handler": rng.choice(["echo", "render", "openai"]),
                "owner": f"owner{i % 20}",
                "project": f"project{i % 7}",
                "status": status,
                "priority": rng.choice([0, 0, 0, 1, 5]),
                "description": f"{rng.choice(['March mailing', 'import', 'nightly export'])} {i}",
                "tags": json.dumps([f"t{i % 5}"]),
                "total": total,
                "succeeded": total - failed if finished else total // 2,
                "failed": failed,
                "queued": 0 if finished else total - total // 2,
                "created_at": created,
                "started_at": created + 1,
                "finished_at": created + 60 if finished else None,
                "last_activity_at": created + (60 if finished else 4),
                "max_attempts": 3,
                "backoff_base_seconds": 1.0,
                "backoff_max_seconds": 300.0,
            }
        )
    with app.store.db.write() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(jobs), rows[start : start + 5000])
    with app.store.db.write() as conn:
        app.store.db.driver(conn).execute("ANALYZE")


def queries(app: Batchyard) -> list[tuple[str, str, Callable[[], Any]]]:
    admin = Principal("root", Role.ADMIN, "root")
    member = Principal("owner3", Role.MEMBER, "owner3")
    first = app.store.jobs.list_jobs(limit=1)[0]

    def page(who: Principal, sort: str = "-created_at", **where: Any) -> Callable[[], Any]:
        if "statuses" in where:
            where["statuses"] = parse_statuses(where["statuses"])
        query = JobQuery.of(JobFilter(**where), sort=sort, limit=51)
        return lambda: app.service.list_jobs(query, principal=who)

    def deep(who: Principal) -> Callable[[], Any]:
        def run() -> Any:
            after = None
            for _ in range(21):
                records = app.store.jobs.list_jobs(JobQuery(owner=who.owner_scope(), limit=51, after=after))
                after = (records[-1].created_at, records[-1].id)
            return records

        return run

    return [
        ("newest page", "admin", page(admin)),
        ("newest page", "owner", page(member)),
        ("status=active", "admin", page(admin, statuses=["active"])),
        ("status=active", "owner", page(member, statuses=["active"])),
        ("status=failed", "admin", page(admin, statuses=["failed"])),
        ("status=running,paused", "owner", page(member, statuses=["running,paused"])),
        ("handler+project", "admin", page(admin, handler="render", project="project3")),
        ("created range (1 day)", "admin", page(admin, created_after=first.created_at - 86400)),
        ("search 'march'", "admin", page(admin, search="march")),
        ("search 'march'", "owner", page(member, search="march")),
        ("search id prefix", "admin", page(admin, search=first.id[:16])),
        ("sort -priority", "admin", page(admin, sort="-priority")),
        ("sort -total", "owner", page(member, sort="-total")),
        ("sort -updated_at, active", "admin", page(admin, sort="-updated_at", statuses=["active"])),
        ("21st page (cursor)", "admin", deep(admin)),
        ("history: 7 days by day + 20 latest", "admin", lambda: app.stats.history(admin)),
        ("history: 7 days by day + 20 latest", "owner", lambda: app.stats.history(member)),
        ("count active (dry run)", "admin", lambda: app.service.count(JobFilter(statuses=parse_statuses(["active"])))),
    ]


def timed(run: Callable[[], Any], runs: int) -> tuple[float, float]:
    run()  # warm the cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def previous_indexes(app: Batchyard) -> None:
    """Back to the indexes the job list had before migration 0005: (owner, created_at) and (created_at)."""
    with app.store.db.write() as conn:
        driver = app.store.db.driver(conn)
        for name in LIST_INDEXES:
            driver.execute(f"DROP INDEX IF EXISTS {name}")
        driver.execute("CREATE INDEX ix_jobs_owner_created ON jobs (owner, created_at)")
        driver.execute("CREATE INDEX ix_jobs_created ON jobs (created_at)")
        driver.execute("ANALYZE")


def run_backend(name: str, url: str, jobs: int, runs: int) -> dict[tuple[str, str], list[float]]:
    with tempfile.TemporaryDirectory(prefix="by-list-bench-") as tmp:
        database_url = url or f"sqlite:///{Path(tmp) / 'b.db'}"
        app = Batchyard(Settings(data_dir=Path(tmp), database_url=database_url))
        try:
            started = time.perf_counter()
            fill(app, jobs)
            console.print(f"{name}: {jobs:,} jobs inserted in {time.perf_counter() - started:.1f} s")
            out: dict[tuple[str, str], list[float]] = {}
            for label, who, run in queries(app):
                out[(label, who)] = list(timed(run, runs))
            previous_indexes(app)
            for label, who, run in queries(app):
                out[(label, who)] += list(timed(run, runs))
            return out
        finally:
            app.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    try:
        import psycopg

        name = f"by_list_bench_{secrets.token_hex(4)}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except Exception as exc:
        console.print(f"[yellow]PostgreSQL skipped: {exc}[/]")
        yield None
        return
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query")
    parser.add_argument("--only", default="sqlite,postgres")
    args = parser.parse_args()
    results: dict[str, dict[tuple[str, str], list[float]]] = {}
    if "sqlite" in args.only:
        results["SQLite"] = run_backend("SQLite", "", args.jobs, args.runs)
    if "postgres" in args.only:
        with postgres_database() as url:
            if url:
                results["PostgreSQL"] = run_backend("PostgreSQL", url, args.jobs, args.runs)
    table = Table(title=f"Job list on {args.jobs:,} jobs: ms per page of 50 (p50 / p95 of {args.runs} runs)")
    table.add_column("query")
    table.add_column("as")
    for backend in results:
        table.add_column(f"{backend}\nindexed", justify="right")
        table.add_column(f"{backend}\nbefore 0005", justify="right")
    for key in next(iter(results.values()), {}):
        cells = [key[0], key[1]]
        for numbers in results.values():
            p50, p95, bare50, bare95 = numbers[key]
            cells += [f"{p50:.1f} / {p95:.1f}", f"{bare50:.1f} / {bare95:.1f}"]
        table.add_row(*cells)
    console.print(table)


if __name__ == "__main__":
    main()
