"""API latency with a big database: 10,000 jobs and 1,000,000 items (not a test; prints a table).

For each backend (SQLite, and PostgreSQL when reachable) it fills a fresh database directly with SQL (fast and
reproducible: counters consistent with the items), starts a real Uvicorn server in a subprocess, and measures
p50/p95 latency of the requests a dashboard makes: a page of jobs, a filtered page, a job's detail, stats, a page
of a job's items (first and deep). It also counts the SQL statements each request runs, in-process, with a
SQLAlchemy hook: the figure that must not grow with the number of items.

    python bench/api.py                       # both backends, 10,000 jobs x 100 items
    python bench/api.py --jobs 2000 --items-per-job 50 --requests 100 --only sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from batchyard import Batchyard, Settings
from batchyard.auth import AuthService, Role

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_P95_MS = {"list": 50.0, "list filtered": 50.0, "stats": 50.0, "detail": 20.0}
STATUSES = ["completed"] * 6 + ["running", "failed", "cancelled", "queued"]
console = Console(width=max(140, Console().width))


def fill(app: Batchyard, jobs: int, items_per_job: int, owners: int = 20) -> list[str]:
    """Insert jobs and items straight into the tables, counters consistent with the items."""
    from sqlalchemy import insert

    from batchyard.schema import job_usage
    from batchyard.schema import jobs as jobs_table

    rng = random.Random(7)
    now = time.time()
    job_ids: list[str] = []
    job_rows: list[dict[str, Any]] = []
    for n in range(jobs):
        created = now - (jobs - n) * 30
        job_id = f"job_{int(created * 1000):012x}{n:08x}"
        status = rng.choice(STATUSES)
        failed = rng.randint(0, items_per_job // 10) if status in ("completed", "failed") else 0
        succeeded = items_per_job - failed if status in ("completed", "failed") else items_per_job // 2
        queued = items_per_job - succeeded - failed
        job_rows.append({
            "id": job_id, "handler": rng.choice(["echo", "render", "openai"]), "owner": f"owner{n % owners}",
            "project": f"project{n % 7}", "status": status, "priority": 0, "params": "{}",
            "description": f"batch {n}", "tags": json.dumps([f"t{n % 5}"]), "meta": "{}", "source": "bench",
            "total": items_per_job, "queued": queued, "running": 0, "succeeded": succeeded, "failed": failed,
            "cancelled": 0, "cost": round(rng.random(), 4), "usage": json.dumps({"tokens": rng.randint(1, 9999)}),
            "busy_seconds": rng.random() * items_per_job, "created_at": created, "started_at": created + 1,
            "finished_at": created + 20 if status in ("completed", "failed", "cancelled") else None,
            "last_activity_at": created + 20, "max_attempts": 3, "backoff_base_seconds": 1.0,
            "backoff_max_seconds": 300.0, "claim_cursor": items_per_job - queued, "last_claimed_at": created,
        })
        job_ids.append(job_id)
    with app.store.db.write() as conn:
        conn.execute(insert(jobs_table), job_rows)
        conn.execute(insert(job_usage), [
            {"job_id": r["id"], "name": "tokens", "amount": json.loads(r["usage"])["tokens"]} for r in job_rows])
    for start in range(0, jobs, 200):
        rows: list[tuple[Any, ...]] = []
        for row in job_rows[start:start + 200]:
            done = row["succeeded"] + row["failed"]
            for seq in range(items_per_job):
                status = "succeeded" if seq < row["succeeded"] else "failed" if seq < done else "queued"
                result = '{"ok":true}' if status == "succeeded" else None
                error = '{"type":"ValueError","message":"bad"}' if status == "failed" else None
                rows.append((row["id"], seq, f"item-{seq}", '{"n":1}', status, 1 if status != "queued" else 0,
                             result, error))
        with app.store.db.write() as conn:
            app.store.db.driver(conn).cursor().executemany(
                _placeholders(app, "INSERT INTO items (job_id, seq, key, payload, status, attempts, result, error) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), rows)
    return job_ids


def _placeholders(app: Batchyard, sql: str) -> str:
    return sql.replace("?", "%s") if app.store.db.is_postgres else sql


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(data_dir: Path, database_url: str) -> Iterator[str]:
    port = free_port()
    code = ("import uvicorn; from batchyard import Settings; from batchyard.api import create_app; "
            f"app = create_app(Settings(data_dir={str(data_dir)!r}, database_url={database_url!r})); "
            f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the API server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def requests_to_measure(job_ids: list[str], client: httpx.Client) -> dict[str, list[str]]:
    sample = random.Random(3).sample(job_ids, 20)
    first_page = client.get(f"/api/v1/jobs/{sample[0]}/items?limit=50").json()
    deep = first_page.get("next_cursor")
    return {
        "list": ["/api/v1/jobs?limit=50"],
        "list filtered": ["/api/v1/jobs?limit=50&status=failed&project=project3"],
        "detail": [f"/api/v1/jobs/{j}" for j in sample],
        "stats": ["/api/v1/stats"],
        "items page": [f"/api/v1/jobs/{j}/items?limit=100" for j in sample],
        "items page (cursor)": [f"/api/v1/jobs/{sample[0]}/items?limit=50&cursor={deep}"] if deep else [],
    }


def measure(base: str, key: str, paths: dict[str, list[str]], n: int) -> dict[str, tuple[float, float, int]]:
    out: dict[str, tuple[float, float, int]] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for name, urls in paths.items():
            if not urls:
                continue
            times = []
            status = 0
            for i in range(n):
                started = time.perf_counter()
                response = client.get(urls[i % len(urls)])
                times.append((time.perf_counter() - started) * 1000)
                status = response.status_code
            times.sort()
            out[name] = (statistics.median(times), times[int(len(times) * 0.95) - 1], status)
    return out


def count_queries(app: Batchyard, key: str, paths: dict[str, list[str]]) -> dict[str, int]:
    """SQL statements per request, counted in-process on the same database."""
    from fastapi.testclient import TestClient
    from sqlalchemy import Engine, event

    from batchyard.api import create_app

    counter = {"n": 0}

    def on_execute(*_: Any) -> None:
        counter["n"] += 1

    event.listen(Engine, "before_cursor_execute", on_execute)  # every engine: the app's may be recreated
    counts: dict[str, int] = {}
    with TestClient(create_app(batchyard=app)) as client:
        for name, urls in paths.items():
            if not urls:
                continue
            client.get(urls[0], headers={"Authorization": f"Bearer {key}"})  # warm (key lookups are cached)
            counter["n"] = 0
            client.get(urls[0], headers={"Authorization": f"Bearer {key}"})
            counts[name] = counter["n"]
    event.remove(Engine, "before_cursor_execute", on_execute)
    return counts


def run_backend(name: str, database_url: str | None, args: argparse.Namespace) -> list[list[str]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"by-api-{name}-"))
    url = database_url or f"sqlite:///{data_dir / 'batchyard.db'}"
    try:
        app = Batchyard(Settings(data_dir=data_dir, database_url=url))
        started = time.perf_counter()
        job_ids = fill(app, args.jobs, args.items_per_job)
        fill_seconds = time.perf_counter() - started
        key, _ = AuthService(app.store).create_key("owner3", Role.MEMBER)
        admin, _ = AuthService(app.store).create_key("admin", Role.ADMIN)
        with server(data_dir, url) as base:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as client:
                paths = requests_to_measure(job_ids, client)
            member_paths = {k: v for k, v in paths.items() if k in ("list", "list filtered", "stats")}
            timings = measure(base, admin, paths, args.requests)
            member = measure(base, key, member_paths, args.requests)
        queries = count_queries(app, admin, paths)
        app.close()
        rows = []
        total_items = args.jobs * args.items_per_job
        for request, (p50, p95, status) in timings.items():
            target = TARGET_P95_MS.get(request)
            verdict = "" if target is None else ("met" if p95 < target else "MISSED")
            rows.append([name, f"{args.jobs:,} jobs / {total_items:,} items", f"{request} (admin)", f"{p50:.1f}",
                         f"{p95:.1f}", str(queries.get(request, "")), f"< {target:g} ms: {verdict}" if target else "",
                         str(status)])
        for request, (p50, p95, status) in member.items():
            target = TARGET_P95_MS.get(request)
            verdict = "" if target is None else ("met" if p95 < target else "MISSED")
            rows.append([name, "", f"{request} (member)", f"{p50:.1f}", f"{p95:.1f}", "",
                         f"< {target:g} ms: {verdict}" if target else "", str(status)])
        console.print(f"[dim]{name}: filled {args.jobs:,} jobs and {total_items:,} items in {fill_seconds:.1f}s[/]")
        return rows
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    try:
        import psycopg

        name = f"by_api_bench_{secrets.token_hex(4)}"
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
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--items-per-job", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200, help="requests per measured route")
    parser.add_argument("--only", default="sqlite,postgres")
    args = parser.parse_args()
    only = set(args.only.split(","))
    rows: list[list[str]] = []
    if "sqlite" in only:
        rows += run_backend("SQLite", None, args)
    if "postgres" in only:
        with postgres_database() as url:
            if url is not None:
                rows += run_backend("PostgreSQL", url, args)
    table = Table(title="Batchyard API latency (real Uvicorn server, one client, sequential requests)")
    for column in ("backend", "data", "request", "p50 ms", "p95 ms", "SQL statements", "target (p95)", "HTTP"):
        table.add_column(column, justify="right" if column.endswith(("ms", "statements")) else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"[dim]Python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}[/]")


if __name__ == "__main__":
    main()
