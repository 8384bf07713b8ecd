"""Error groups of a job with 1,000,000 items and 100,000 failures, on SQLite and PostgreSQL (not a test; prints a
table).

For each backend it fills a fresh database straight through SQL (a fixed seed): one finished job whose failed
items carry errors from 25 templates (numbers, paths, ids, URLs differing per item) and the signature the store
writes when an item fails (``core/errorsig.error_text_signature``, the same function). Then it times, through the
service (what the routes run): the first page of groups with 3 samples each, one group, exporting the largest
group's items (streamed), and -- the alternative the stored signature avoids -- reading every failed item's error
and normalizing it in Python. Last, retrying the largest group (once: it changes the data).

    python bench/error_groups.py                                  # 1,000,000 items, 100,000 failed
    python bench/error_groups.py --items 200000 --failed 20000 --only sqlite
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
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from batchyard import Batchyard, Settings
from batchyard.core.errorsig import error_signature, error_text_signature

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEMPLATES = [
    ("LookupError", None, "user {n} not found at /srv/users/{n}.json"),
    ("ValueError", None, "bad value {n}.5 in https://example.com/rows/{n}?x={n}"),
    ("ItemError", "quota", "quota exceeded for 'acct-{n}' (limit {n})"),
    ("TimeoutError", "timeout", "request {uuid} timed out after {n}.2s"),
    ("ConnectionError", None, "connect to 10.0.{a}.{b}:5432 refused"),
] + [("ItemError", f"http_{400 + k}", f"upstream answered {400 + k} for job_{{hex}} (model m{k})") for k in range(20)]
CHUNK = 20_000
console = Console(width=max(130, Console().width))


def fill(app: Batchyard, n_items: int, n_failed: int) -> str:
    from sqlalchemy import insert

    from batchyard.store.schema import jobs

    rng = random.Random(5)
    job_id = f"job_{int(time.time() * 1000):012x}{rng.getrandbits(32):08x}"
    now = time.time()
    failed_seqs = set(rng.sample(range(n_items), n_failed))
    with app.store.db.write() as conn:
        conn.execute(
            insert(jobs).values(
                id=job_id,
                handler="echo",
                owner="bench",
                status="completed",
                total=n_items,
                succeeded=n_items - n_failed,
                failed=n_failed,
                created_at=now - 3600,
                started_at=now - 3500,
                finished_at=now - 10,
                last_activity_at=now - 10,
                max_attempts=3,
                backoff_base_seconds=1.0,
                backoff_max_seconds=300.0,
            )
        )
    weights = [1 / (k + 1) for k in range(len(TEMPLATES))]  # a few big groups, a long tail
    for start in range(0, n_items, CHUNK):
        rows: list[tuple[Any, ...]] = []
        for seq in range(start, min(n_items, start + CHUNK)):
            if seq in failed_seqs:
                error_type, code, template = rng.choices(TEMPLATES, weights)[0]
                message = template.format(
                    n=rng.randint(1, 10**6),
                    uuid=f"{rng.getrandbits(128):032x}",
                    a=rng.randint(0, 255),
                    b=rng.randint(0, 255),
                    hex=f"{rng.getrandbits(80):020x}",
                )
                error = json.dumps({"type": error_type, "code": code, "message": message, "attempt": 3})
                signature = error_text_signature(error)
                rows.append((job_id, seq, f"k{seq}", '{"n":1}', "failed", 3, None, error, now - 100, signature))
            else:
                rows.append((job_id, seq, f"k{seq}", '{"n":1}', "succeeded", 1, '{"ok":1}', None, now - 100, None))
        with app.store.db.write() as conn:
            sql = (
                "INSERT INTO items (job_id, seq, key, payload, status, attempts, result, error, finished_at, "
                "error_signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            if app.store.db.is_postgres:
                sql = sql.replace("?", "%s")
            app.store.db.driver(conn).cursor().executemany(sql, rows)
    with app.store.db.write() as conn:
        app.store.db.driver(conn).execute("ANALYZE")
    return job_id


def in_python(app: Batchyard, job_id: str) -> int:
    """The alternative: every failed item's error read and normalized here (what a stored signature avoids)."""
    groups: Counter[str] = Counter()
    for item in app.store.items.iter_items(job_id, statuses=["failed"], page_size=5000):
        groups[error_signature(item.error)] += 1
    return len(groups)


def timed(run: Callable[[], Any], runs: int) -> tuple[float, float]:
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[-1]


def run_backend(name: str, url: str, n_items: int, n_failed: int, runs: int) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="by-groups-bench-") as tmp:
        app = Batchyard(Settings(data_dir=Path(tmp), database_url=url or f"sqlite:///{Path(tmp) / 'b.db'}"))
        try:
            started = time.perf_counter()
            job_id = fill(app, n_items, n_failed)
            console.print(f"{name}: {n_items:,} items ({n_failed:,} failed) in {time.perf_counter() - started:.0f} s")
            service = app.error_groups
            groups, _ = service.page(job_id, limit=20)
            largest = groups[0].record
            console.print(f"{name}: {len(groups)} groups on the first page; the largest holds {largest.count:,}")
            out: dict[str, str] = {}

            def cell(label: str, run: Callable[[], Any], n: int = runs) -> None:
                p50, worst = timed(run, n)
                out[label] = f"{p50:,.1f} / {worst:,.1f}"

            cell("first page of groups (20, 3 samples each)", lambda: service.page(job_id, limit=20))
            cell("one group (3 samples)", lambda: service.get(job_id, largest.signature))
            cell(
                f"export the largest group ({largest.count:,} items)",
                lambda: sum(1 for _ in service.items(job_id, largest.signature)),
                max(1, runs // 5),
            )
            cell("alternative: every failure normalized in Python", lambda: in_python(app, job_id), 1)
            start = time.perf_counter()
            _, retried = service.retry(job_id, largest.signature)
            out["retry the largest group (once)"] = f"{(time.perf_counter() - start) * 1000:,.1f} ({retried:,} items)"
            return out
        finally:
            app.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    try:
        import psycopg

        name = f"by_groups_bench_{secrets.token_hex(4)}"
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
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--failed", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per read")
    parser.add_argument("--only", default="sqlite,postgres")
    args = parser.parse_args()
    results: dict[str, dict[str, str]] = {}
    if "sqlite" in args.only:
        results["SQLite"] = run_backend("SQLite", "", args.items, args.failed, args.runs)
    if "postgres" in args.only:
        with postgres_database() as url:
            if url:
                results["PostgreSQL"] = run_backend("PostgreSQL", url, args.items, args.failed, args.runs)
    table = Table(title=f"Error groups of one job: {args.items:,} items, {args.failed:,} failed (ms: p50 / max)")
    table.add_column("operation")
    for backend in results:
        table.add_column(backend, justify="right")
    for label in next(iter(results.values()), {}):
        table.add_row(label, *(numbers.get(label, "") for numbers in results.values()))
    console.print(table)


if __name__ == "__main__":
    main()
