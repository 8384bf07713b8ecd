"""API latency: one client on a big database, and many clients against a real server (not a test; prints tables).

Section ``latency``: for each backend (SQLite, and PostgreSQL when reachable) it fills a fresh database directly
with SQL (fast and reproducible: counters consistent with the items), starts a real Uvicorn server in a
subprocess, and measures p50/p95 latency of the requests a dashboard makes, one at a time: a page of jobs, a
filtered page, a job's detail, stats, a page of a job's items (first and deep). It also counts the SQL statements
each request runs, in-process, with a SQLAlchemy hook: the figure that must not grow with the number of items.

Section ``load``: for each backend it fills a fresh database with finished jobs, starts ``batchyard serve`` (the
API with its own worker, as users run it) in a subprocess, and runs a closed-loop load generator
(``bench/_load_client.py``, another process) with 1, 10 and 50 concurrent clients: job create (10 ``echo`` items,
processed by the server's worker meanwhile) and job list (a page of 50). It reports p50/p95/max latency, errors,
requests per second and the server's CPU.

    python bench/api.py                       # both sections, both backends (about 10 minutes)
    python bench/api.py --quick               # a fast look (about 2 minutes)
    python bench/api.py --sections load --repeat 3 --only sqlite
    python bench/api.py --sections latency --jobs 2000 --items-per-job 50 --requests 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from batchyard import Batchyard, Settings
from batchyard.services.auth import AuthService, Role

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_P95_MS = {"list": 50.0, "list filtered": 50.0, "stats": 50.0, "detail": 20.0}
LOAD_TARGET_P95_MS = {"create": 200.0, "list": 100.0}
LOAD_TARGET_CLIENTS = 50
IDLE_TIMEOUT_SECONDS = 900.0
LOAD_ITEMS_PER_JOB = 10
FINISHED_STATUSES = ["completed"] * 9 + ["failed"]
STATUSES = ["completed"] * 6 + ["running", "failed", "cancelled", "queued"]
console = Console(width=max(160, Console().width))


def fill(app: Batchyard, jobs: int, items_per_job: int, owners: int = 20, statuses: list[str] = STATUSES) -> list[str]:
    """Insert jobs and items straight into the tables, counters consistent with the items."""
    from sqlalchemy import insert

    from batchyard.store.schema import job_usage
    from batchyard.store.schema import jobs as jobs_table

    rng = random.Random(7)
    now = time.time()
    job_ids: list[str] = []
    job_rows: list[dict[str, Any]] = []
    for n in range(jobs):
        created = now - (jobs - n) * 30
        job_id = f"job_{int(created * 1000):012x}{n:08x}"
        status = rng.choice(statuses)
        failed = rng.randint(0, items_per_job // 10) if status in ("completed", "failed") else 0
        succeeded = items_per_job - failed if status in ("completed", "failed") else items_per_job // 2
        queued = items_per_job - succeeded - failed
        finished_at = created + 20 if status in ("completed", "failed", "cancelled") else None
        job_rows.append(
            {
                "id": job_id,
                "handler": rng.choice(["echo", "render", "openai"]),
                "owner": f"owner{n % owners}",
                "project": f"project{n % 7}",
                "status": status,
                "priority": 0,
                "params": "{}",
                "description": f"batch {n}",
                "tags": json.dumps([f"t{n % 5}"]),
                "meta": "{}",
                "source": "bench",
                "total": items_per_job,
                "queued": queued,
                "running": 0,
                "succeeded": succeeded,
                "failed": failed,
                "cancelled": 0,
                "cost": round(rng.random(), 4),
                "usage": json.dumps({"tokens": rng.randint(1, 9999)}),
                "busy_seconds": rng.random() * items_per_job,
                "created_at": created,
                "started_at": created + 1,
                "finished_at": finished_at,
                "files_written_at": finished_at,
                "result_files": None if finished_at is None else "{}",
                "last_activity_at": created + 20,
                "max_attempts": 3,
                "backoff_base_seconds": 1.0,
                "backoff_max_seconds": 300.0,
                "claim_cursor": items_per_job - queued,
                "last_claimed_at": created,
            }
        )
        job_ids.append(job_id)
    with app.store.db.write() as conn:
        conn.execute(insert(jobs_table), job_rows)
        conn.execute(
            insert(job_usage),
            [{"job_id": r["id"], "name": "tokens", "amount": json.loads(r["usage"])["tokens"]} for r in job_rows],
        )
    for start in range(0, jobs, 200):
        rows: list[tuple[Any, ...]] = []
        for row in job_rows[start : start + 200]:
            done = row["succeeded"] + row["failed"]
            for seq in range(items_per_job):
                status = "succeeded" if seq < row["succeeded"] else "failed" if seq < done else "queued"
                result = '{"ok":true}' if status == "succeeded" else None
                error = '{"type":"ValueError","message":"bad"}' if status == "failed" else None
                rows.append(
                    (row["id"], seq, f"item-{seq}", '{"n":1}', status, 1 if status != "queued" else 0, result, error)
                )
        with app.store.db.write() as conn:
            app.store.db.driver(conn).cursor().executemany(
                _placeholders(
                    app,
                    "INSERT INTO items (job_id, seq, key, payload, status, attempts, result, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ),
                rows,
            )
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
    code = (
        "import uvicorn; from batchyard import Settings; from batchyard.api import create_app; "
        f"app = create_app(Settings(data_dir={str(data_dir)!r}, database_url={database_url!r})); "
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')"
    )
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
        app = Batchyard(Settings(data_dir=data_dir, database_url=url), demo_handlers=True)
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
            rows.append(
                [
                    name,
                    f"{args.jobs:,} jobs / {total_items:,} items",
                    f"{request} (admin)",
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    str(queries.get(request, "")),
                    f"< {target:g} ms: {verdict}" if target else "",
                    str(status),
                ]
            )
        for request, (p50, p95, status) in member.items():
            target = TARGET_P95_MS.get(request)
            verdict = "" if target is None else ("met" if p95 < target else "MISSED")
            rows.append(
                [
                    name,
                    "",
                    f"{request} (member)",
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    "",
                    f"< {target:g} ms: {verdict}" if target else "",
                    str(status),
                ]
            )
        console.print(f"[dim]{name}: filled {args.jobs:,} jobs and {total_items:,} items in {fill_seconds:.1f}s[/]")
        return rows
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# -- under load: concurrent clients against a real `batchyard serve` ---------------------------------------------


@dataclass
class LoadRun:
    op: str
    clients: int
    p50: float
    p95: float
    max: float
    requests: int
    errors: dict[str, int]
    per_second: float
    server_cpu: float  # share of one core the server process used while measured
    client_cpu: float  # and the load generator
    drain_seconds: float = 0.0  # after the row, until the server's worker had finished every job


@contextlib.contextmanager
def serve_process(data_dir: Path, database_url: str) -> Iterator[tuple[str, int]]:
    """``batchyard serve`` (API + its own worker + maintenance) in a subprocess: (base URL, pid)."""
    port = free_port()
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below, read if it fails
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchyard.cli.main",
            "serve",
            "--data-dir",
            str(data_dir),
            "--db",
            database_url,
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"batchyard serve did not start: {(data_dir / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(base: str, key: str, timeout: float = IDLE_TIMEOUT_SECONDS) -> float:
    """Wait until the server's worker has finished every job (result files written), so one row's work does not
    spill into the next; returns how long that took."""
    # A job stays "finalizing" until its result files are written (echo items do not fail).
    busy = "&".join(f"status={s}" for s in ("queued", "running", "finalizing", "cancelling"))
    started = time.monotonic()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while time.monotonic() < started + timeout:
            if not client.get(f"/api/v1/jobs?limit=1&{busy}").json()["data"]:
                return time.monotonic() - started
            time.sleep(0.5)
    return math.inf


def load_phase(base: str, pid: int, key: str, op: str, clients: int, seconds: float, warmup: float) -> LoadRun:
    script = Path(__file__).resolve().parent / "_load_client.py"
    cmd = [
        sys.executable,
        str(script),
        "--url",
        base,
        "--key",
        key,
        "--op",
        op,
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    time.sleep(warmup)
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    output, _ = client.communicate(timeout=seconds + warmup + 120)
    cpu = (cpu_seconds(pid) - cpu_before) / max(time.monotonic() - wall_before, 1e-9)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime) / max(
        time.monotonic() - started, 1e-9
    )
    result = json.loads(output)
    times: list[float] = result["latencies_ms"] or [math.nan]
    return LoadRun(
        op,
        clients,
        statistics.median(times),
        percentile(times, 95),
        times[-1],
        len(result["latencies_ms"]),
        result["errors"],
        len(result["latencies_ms"]) / result["seconds"],
        cpu,
        client_cpu,
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, math.ceil(len(sorted_values) * pct / 100))
    return sorted_values[rank - 1]


def median_run(runs: list[LoadRun]) -> LoadRun:
    """The repeats of one phase folded into one row: the median of each figure, but the worst maximum and the
    sum of the errors."""
    errors: dict[str, int] = {}
    for run in runs:
        for kind, n in run.errors.items():
            errors[kind] = errors.get(kind, 0) + n

    def med(name: str) -> float:
        values: list[float] = [getattr(r, name) for r in runs]
        return statistics.median(values)

    return LoadRun(
        runs[0].op,
        runs[0].clients,
        med("p50"),
        med("p95"),
        max(r.max for r in runs),
        sum(r.requests for r in runs),
        errors,
        med("per_second"),
        med("server_cpu"),
        med("client_cpu"),
        med("drain_seconds"),
    )


def run_load(name: str, database_url: str | None, args: argparse.Namespace) -> list[list[str]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"by-load-{name}-"))
    url = database_url or f"sqlite:///{data_dir / 'batchyard.db'}"
    try:
        app = Batchyard(Settings(data_dir=data_dir, database_url=url), demo_handlers=True)
        fill(app, args.load_jobs, LOAD_ITEMS_PER_JOB, statuses=FINISHED_STATUSES)
        admin, _ = AuthService(app.store).create_key("admin", Role.ADMIN)
        app.close()
        runs: dict[tuple[str, int], list[LoadRun]] = {}
        with serve_process(data_dir, url) as (base, pid):
            for _ in range(args.repeat):
                for clients in args.clients:
                    for op in ("create", "list"):
                        run = load_phase(base, pid, admin, op, clients, args.seconds, args.warmup)
                        run.drain_seconds = wait_until_idle(base, admin)
                        runs.setdefault((op, clients), []).append(run)
                        console.print(
                            f"[dim]{name} {op} x{clients}: p50 {run.p50:.1f} ms, p95 {run.p95:.1f} ms, "
                            f"{run.per_second:.0f}/s, server CPU {run.server_cpu:.0%}, worker done "
                            f"{run.drain_seconds:.0f} s later, load {os.getloadavg()[0]:.1f}[/]"
                        )
        rows = []
        for (op, clients), repeats in sorted(runs.items(), key=lambda kv: (kv[0][0] != "create", kv[0][1])):
            run = median_run(repeats)
            target = LOAD_TARGET_P95_MS[op] if clients == LOAD_TARGET_CLIENTS else None
            verdict = "" if target is None else f"< {target:g} ms: {'met' if run.p95 < target else 'MISSED'}"
            errors = ", ".join(f"{k} x{v}" for k, v in sorted(run.errors.items())) or "0"
            rows.append(
                [
                    name,
                    op,
                    str(clients),
                    f"{run.p50:.1f}",
                    f"{run.p95:.1f}",
                    f"{run.max:.0f}",
                    f"{run.per_second:.0f}",
                    f"{run.server_cpu:.0%}",
                    f"{run.client_cpu:.0%}",
                    f"+{run.drain_seconds:.0f} s" if op == "create" else "",
                    errors,
                    verdict,
                ]
            )
        return rows
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def print_load_table(rows: list[list[str]], args: argparse.Namespace) -> None:
    table = Table(
        title=f"Batchyard API under load (batchyard serve with its worker; closed loop, {args.seconds:g} s "
        f"per row after {args.warmup:g} s warm-up, median of {args.repeat})"
    )
    for column in (
        "backend",
        "request",
        "clients",
        "p50 ms",
        "p95 ms",
        "max ms",
        "req/s",
        "server CPU",
        "client CPU",
        "worker done",
        "errors",
        "target (p95)",
    ):
        table.add_column(
            column, justify="left" if column in ("backend", "request", "errors", "target (p95)") else "right"
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)


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
    parser.add_argument("--only", default="sqlite,postgres", help="backends: sqlite,postgres")
    parser.add_argument("--sections", default="latency,load", help="latency,load")
    parser.add_argument("--load-jobs", type=int, default=3000, help="jobs in the database before the load")
    parser.add_argument("--clients", default="1,10,50", help="concurrent clients, one row each")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per load row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every load row; the table shows medians")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast look: 2,000 jobs x 20 items, 50 requests per route, 4 s per load row",
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.items_per_job, args.requests = 2000, 20, 50
        args.load_jobs, args.seconds, args.warmup = 2000, 4.0, 1.0
    args.clients = [int(n) for n in args.clients.split(",")]
    only, sections = set(args.only.split(",")), set(args.sections.split(","))
    load_before = os.getloadavg()[0]
    rows: list[list[str]] = []
    load_rows: list[list[str]] = []
    with postgres_database() if "postgres" in only else contextlib.nullcontext() as pg_url:
        backends: list[tuple[str, str | None]] = [("SQLite", None)] if "sqlite" in only else []
        if pg_url is not None:
            backends.append(("PostgreSQL", pg_url))
        for name, url in backends:
            if "latency" in sections:
                rows += run_backend(name, url, args)
            if "load" in sections:
                with postgres_database() if url else contextlib.nullcontext() as load_url:
                    load_rows += run_load(name, load_url, args)
    if rows:
        table = Table(title="Batchyard API latency (real Uvicorn server, one client, sequential requests)")
        for column in ("backend", "data", "request", "p50 ms", "p95 ms", "SQL statements", "target (p95)", "HTTP"):
            table.add_column(column, justify="right" if column.endswith(("ms", "statements")) else "left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if load_rows:
        print_load_table(load_rows, args)
    console.print(
        f"[dim]Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average (1 min) "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after[/]"
    )


if __name__ == "__main__":
    main()
