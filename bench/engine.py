"""Batchyard engine benchmark: end-to-end throughput on SQLite and PostgreSQL, submit memory, and the
alternatives (Dramatiq, Huey) measured in the same run on the same machine.

    python bench/engine.py                        # everything, defaults (about 2-5 minutes on 2 cores)
    python bench/engine.py --repeat 1 --only sqlite,floor

See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from _alternatives import (  # noqa: E402 - after making bench/ importable
    DEFAULT_REDIS_URL,
    QUEUES,
    REFERENCE_RATES,
    run_alternative,
)
from _floor import floor_seconds  # noqa: E402

from batchyard import Batchyard  # noqa: E402

SECTIONS = ("sqlite", "postgres", "quota", "rss", "alternatives", "floor")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ALTERNATIVE_ITEMS = 20_000
POLL_SECONDS = 0.01
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 60.0
TARGETS = {"SQLite": 50_000, "PostgreSQL": 20_000}
RSS_TARGET_MB = 300
ENVIRONMENT: dict[str, str] = {}  # versions, printed under the table

# Piped output (a log, CI) would otherwise be cut to 80 columns; a terminal or COLUMNS keeps its own width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


# -- rows ---------------------------------------------------------------------------------------------------


@dataclass
class Row:
    system: str
    backend: str
    items: int | None
    rates: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    reference: float | None = None  # an earlier measurement, not run now
    alternative: bool = False

    @property
    def median(self) -> float | None:
        if self.rates:
            return statistics.median(self.rates)
        return self.reference

    def range_text(self) -> str:
        if self.reference is not None:
            return "-"
        if len(self.rates) > 1:
            return f"{min(self.rates):,.0f} - {max(self.rates):,.0f}"
        return "1 run" if self.rates else "-"


# -- Batchyard end to end -----------------------------------------------------------------------------------


# Moments of a job, from its record (database clock), shown as seconds after the submit call started.
PHASES = (("started_at", "first claim"), ("finished_at", "all items done"), ("files_written_at", "files written"))


@dataclass
class EndToEnd:
    total_seconds: float
    submit_seconds: float
    worker_exit: int
    phases: dict[str, float]


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _start_worker(data_dir: Path, database_url: str | None, log: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        str(BENCH_DIR / "_bench_worker.py"),
        "--data-dir",
        str(data_dir),
        "--concurrency",
        "1000",
    ]
    if database_url:
        command += ["--database-url", database_url]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _stop_worker(worker: subprocess.Popen[bytes]) -> int:
    """SIGTERM the worker and wait for it; its exit code (-9 when it had to be killed)."""
    if worker.poll() is not None:
        return worker.returncode
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return -9


def _wait_registered(app: Batchyard, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while not app.service.live_workers():
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode} before registering:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not registered after {WORKER_READY_TIMEOUT:.0f}s:\n{_tail(log_path)}")
        time.sleep(0.05)


def _items(n: int) -> Iterator[dict[str, int]]:
    return ({"n": i} for i in range(n))


def batchyard_end_to_end(n: int, database_url: str | None, *, quota: bool = False) -> EndToEnd:
    """One run: fresh data dir, one worker process, submit ``n`` echo items, poll until the job is finished.
    With ``quota`` the owner has an item budget and a running cap (never reached): every claim takes the quota
    path (the quota rows locked, what is left read, the usage buckets written)."""
    with tempfile.TemporaryDirectory(prefix="batchyard-bench-") as tmp:
        data_dir = Path(tmp)
        log_path = data_dir / "worker.log"
        app = Batchyard(data_dir=data_dir, database_url=database_url, demo_handlers=True)
        worker = None
        try:
            app.store  # noqa: B018 - create the schema here, so the two processes don't both migrate
            if quota:
                app.quotas.set("local", {"items": n * 10, "max_running": 1_000_000, "period": "month"})
            with open(log_path, "wb") as log:
                worker = _start_worker(data_dir, database_url, log)
            _wait_registered(app, worker, log_path)
            started, started_wall = time.perf_counter(), time.time()
            job = app.submit("echo", _items(n))
            submitted = time.perf_counter()
            deadline = time.monotonic() + max(120.0, n / 500)
            view = app.service.get(job.id)
            while not view.finished:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode} mid-job:\n{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job.id} still {view.job.status} ({view.job.done}/{n} done)")
                time.sleep(POLL_SECONDS)
                view = app.service.get(job.id)
            finished = time.perf_counter()
        finally:
            exit_code = _stop_worker(worker) if worker is not None else 0
            app.close()
        record = view.job
        rows = (record.result_files or {}).get("results.jsonl", {}).get("rows")
        if record.status != "completed" or record.succeeded != n or rows != n:
            raise RuntimeError(f"job ended {record.status} with {record.succeeded}/{n} succeeded, {rows} result rows")
        phases = {name: getattr(record, name) - started_wall for name, _ in PHASES if getattr(record, name) is not None}
        return EndToEnd(finished - started, submitted - started, exit_code, phases)


def measure_batchyard(backend: str, n: int, repeat: int, url_factory: Callable[[], Any], *, quota: bool = False) -> Row:
    """``repeat`` end-to-end runs; ``url_factory`` is a context manager yielding a fresh database URL."""
    row = Row("Batchyard with a quota" if quota else "Batchyard", backend, n)
    submits: list[float] = []
    exits: list[int] = []
    phases: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    for run in range(repeat):
        with url_factory() as url:
            result = batchyard_end_to_end(n, url, quota=quota)
        row.rates.append(n / result.total_seconds)
        submits.append(result.submit_seconds)
        exits.append(result.worker_exit)
        for name, seconds in result.phases.items():
            phases[name].append(seconds)
        console.log(
            f"{row.system} {backend} run {run + 1}/{repeat}: {n / result.total_seconds:,.0f} items/s "
            f"(submit {result.submit_seconds:.2f} s, total {result.total_seconds:.2f} s, "
            f"worker exit {result.worker_exit})"
        )
    submit = statistics.median(submits)
    row.notes.append(f"submit alone {submit:.2f} s ({n / submit:,.0f} items/s)")
    timeline = ", ".join(f"{label} {statistics.median(phases[name]):.2f}" for name, label in PHASES if phases[name])
    row.notes.append(
        f"median timeline, s after submit started: {timeline}, "
        f"seen finished {statistics.median(n / r for r in row.rates):.2f}"
    )
    target = TARGETS[backend]
    row.notes.append(f"target >= {target:,}/s: {'met' if statistics.median(row.rates) >= target else 'MISSED'}")
    if any(code != 0 for code in exits):
        row.notes.append(f"worker exit codes after SIGTERM: {exits}")
    else:
        row.notes.append("worker exited 0 on SIGTERM")
    return row


class _SqliteUrl:
    """A context manager yielding None: Batchyard's default, SQLite in the (fresh) data dir."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class PostgresDatabase:
    """A fresh database on the server for one run, dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"batchyard_bench_{uuid.uuid4().hex[:12]}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def __enter__(self) -> str:
        from sqlalchemy.engine import make_url

        self._admin(f'CREATE DATABASE "{self.name}"')
        return make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL can't be used (None when it answers); also fills in the server version."""
    try:
        import psycopg
    except ImportError:
        return "pip install 'psycopg[binary]'"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            ENVIRONMENT["PostgreSQL"] = row[0] if row else "?"
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {admin_url}: {str(exc).strip().splitlines()[0]}"
    return None


# -- submit memory ------------------------------------------------------------------------------------------


def write_jsonl(path: Path, lines: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        batch: list[str] = []
        for i in range(1, lines + 1):
            batch.append(f'{{"custom_id": "req-{i:07d}", "body": {{"n": {i}}}}}\n')
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))


def submit_file_rss(path: Path, lines: int, database_url: str | None) -> tuple[float, float]:
    """(peak RSS in MB, lines/s) of a fresh process that submits ``path`` and exits.

    The submit process is started by a small launcher (``_peak_rss.py``) that reads
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (KB on Linux) after it exits: spawned from this process instead,
    its figure would include this process's own RSS (see the launcher's docstring).
    """
    with tempfile.TemporaryDirectory(prefix="batchyard-rss-") as tmp:
        command = [
            sys.executable,
            str(BENCH_DIR / "_peak_rss.py"),
            sys.executable,
            str(BENCH_DIR / "_bench_submit.py"),
            str(path),
            "--data-dir",
            tmp,
        ]
        if database_url:
            command += ["--database-url", database_url]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    text = done.stdout.decode(errors="replace")
    lines_out = text.strip().splitlines()
    launcher = json.loads(lines_out[-1]) if done.returncode == 0 and lines_out else None
    if launcher is None or launcher["returncode"] != 0:
        raise RuntimeError(f"submit process failed:\n{text[-3000:]}")
    report = json.loads(lines_out[-2])
    if report["total"] != lines:
        raise RuntimeError(f"submitted {report['total']} items, expected {lines}")
    return launcher["maxrss_kb"] / 1024, lines / report["seconds"]


def measure_rss(backend: str, path: Path, lines: int, url_factory: Callable[[], Any]) -> Row:
    row = Row(f"Batchyard submit {lines:,}-line JSONL", backend, lines)
    with url_factory() as url:
        rss_mb, rate = submit_file_rss(path, lines, url)
    with url_factory() as url:  # the same process submitting one line: interpreter, imports, connections
        one_line = path.with_name("one-line.jsonl")
        write_jsonl(one_line, 1)
        baseline_mb, _ = submit_file_rss(one_line, 1, url)
    row.rates.append(rate)
    verdict = "met" if rss_mb < RSS_TARGET_MB else "MISSED"
    row.notes.append(
        f"peak RSS {rss_mb:,.0f} MB (target < {RSS_TARGET_MB} MB: {verdict}); "
        f"{baseline_mb:,.0f} MB for a 1-line file; items/s = lines/s of the submit alone"
    )
    console.log(f"submit {lines:,} lines on {backend}: peak RSS {rss_mb:,.0f} MB, {rate:,.0f} lines/s")
    return row


# -- floor --------------------------------------------------------------------------------------------------


def measure_floor(n: int, repeat: int) -> Row:
    row = Row("floor: raw sqlite3 loop", "SQLite", n)
    for run in range(repeat):
        seconds = floor_seconds(n)
        row.rates.append(n / seconds)
        console.log(f"floor run {run + 1}/{repeat}: {n / seconds:,.0f} items/s")
    row.notes.append("insert, claim 1,000 at a time, complete, write JSONL; no leases/counters/events")
    return row


# -- alternatives -------------------------------------------------------------------------------------------


def measure_alternative(key: str, repeat: int, redis_url: str) -> Row:
    result = run_alternative(key, ALTERNATIVE_ITEMS, repeat, redis_url, log=console.log)
    row = Row(result.name, "Redis", ALTERNATIVE_ITEMS, rates=result.rates, alternative=True)
    if result.skipped:
        row.skipped = result.skipped
    else:
        enqueue = statistics.median(result.enqueue_seconds)
        row.notes += [*result.notes, f"enqueue alone {enqueue:.2f} s"]
    return row


def measure_alternatives(repeat: int, redis_url: str) -> list[Row]:
    rows: list[Row] = []
    for key, queue in QUEUES.items():
        _guarded(
            queue.name,
            rows,
            functools.partial(measure_alternative, key, repeat, redis_url),
            Row(queue.name, "Redis", ALTERNATIVE_ITEMS, alternative=True),
        )
    for name, rate in REFERENCE_RATES.items():
        rows.append(
            Row(
                f"{name} (earlier measurement)",
                "-",
                ALTERNATIVE_ITEMS,
                reference=rate,
                alternative=True,
                notes=["not run now; same shape, measured earlier on this machine"],
            )
        )
    return rows


# -- output -------------------------------------------------------------------------------------------------


def _guarded(label: str, rows: list[Row], make: Callable[[], Row | list[Row]], fallback: Row) -> None:
    """Run one section; a failure becomes that row's note instead of ending the benchmark."""
    try:
        made = make()
    except Exception as exc:
        console.log(f"[red]{label} failed:[/red] {exc}")
        fallback.skipped = f"failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        rows.append(fallback)
        return
    rows.extend(made if isinstance(made, list) else [made])


def print_tables(rows: list[Row], args: argparse.Namespace, elapsed: float) -> None:
    env = ", ".join(f"{k} {v}" for k, v in ENVIRONMENT.items())
    table = Table(
        title=f"Batchyard engine benchmark ({args.repeat} run(s) per row, {elapsed:,.0f} s in all)",
        caption=env,
        show_lines=True,
    )
    table.add_column("system")
    table.add_column("backend")
    table.add_column("items", justify="right")
    table.add_column("median items/s", justify="right")
    table.add_column("range", justify="right")
    table.add_column("notes", max_width=60)
    for row in rows:
        items = f"{row.items:,}" if row.items else "-"
        if row.skipped:
            status = row.skipped if row.skipped.startswith("failed:") else f"skipped: {row.skipped}"
            table.add_row(row.system, row.backend, items, status, "-", "; ".join(row.notes))
            continue
        median = row.median
        table.add_row(
            row.system, row.backend, items, f"{median:,.0f}" if median else "-", row.range_text(), "; ".join(row.notes)
        )
    console.print(table)

    ours = [r for r in rows if r.system == "Batchyard" and r.median]
    others = [r for r in rows if r.alternative and r.median]
    if not ours or not others:
        return
    ratios = Table(title="Batchyard median / alternative median (items per second)")
    ratios.add_column("alternative")
    ratios.add_column("items/s", justify="right")
    for row in ours:
        ratios.add_column(f"Batchyard {row.backend} ({row.median:,.0f}/s)", justify="right")
    for other in others:
        assert other.median is not None
        ratios.add_row(
            other.system, f"{other.median:,.0f}", *(f"{row.median / other.median:,.1f}x" for row in ours if row.median)
        )
    console.print(ratios)
    console.print(
        f"[dim]Batchyard rows process {args.items:,} items, the alternatives {ALTERNATIVE_ITEMS:,} "
        "tasks: each rate is for its own run size.[/dim]"
    )


# -- main ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items per Batchyard run (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is reported (default 3)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--rss-lines",
        type=int,
        default=1_000_000,
        help="lines in the JSONL file for the submit-memory row (default 1000000)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="admin URL; each run creates and drops a fresh database on that server",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="a dedicated Redis database for the alternatives: it is FLUSHED before and after",
    )
    args = parser.parse_args(argv)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.items < 1 or args.repeat < 1 or args.rss_lines < 1:
        parser.error("--items, --repeat and --rss-lines must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ENVIRONMENT.update(
        {"Python": platform.python_version(), "cores": str(os.cpu_count()), "SQLite": sqlite3.sqlite_version}
    )
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[Row] = []
    pg_problem = postgres_problem(args.postgres_url) if args.only & {"postgres", "rss"} else None

    def pg_url() -> PostgresDatabase:
        return PostgresDatabase(args.postgres_url)

    if "floor" in args.only:
        _guarded(
            "floor",
            rows,
            lambda: measure_floor(args.items, args.repeat),
            Row("floor: raw sqlite3 loop", "SQLite", args.items),
        )
    if "sqlite" in args.only:
        _guarded(
            "sqlite",
            rows,
            lambda: measure_batchyard("SQLite", args.items, args.repeat, _SqliteUrl),
            Row("Batchyard", "SQLite", args.items),
        )
    if "postgres" in args.only:
        if pg_problem:
            rows.append(Row("Batchyard", "PostgreSQL", args.items, skipped=pg_problem))
        else:
            _guarded(
                "postgres",
                rows,
                lambda: measure_batchyard("PostgreSQL", args.items, args.repeat, pg_url),
                Row("Batchyard", "PostgreSQL", args.items),
            )
    if "quota" in args.only:  # the same runs as above, every claim through an owner's quota
        _guarded(
            "quota",
            rows,
            lambda: measure_batchyard("SQLite", args.items, args.repeat, _SqliteUrl, quota=True),
            Row("Batchyard with a quota", "SQLite", args.items),
        )
        if pg_problem:
            rows.append(Row("Batchyard with a quota", "PostgreSQL", args.items, skipped=pg_problem))
        else:
            _guarded(
                "quota",
                rows,
                lambda: measure_batchyard("PostgreSQL", args.items, args.repeat, pg_url, quota=True),
                Row("Batchyard with a quota", "PostgreSQL", args.items),
            )
    if "rss" in args.only:
        rows += _rss_rows(args, pg_problem, pg_url)
    if "alternatives" in args.only:
        rows += measure_alternatives(args.repeat, args.redis_url)
    # Other processes on the machine skew every row; the 1-minute load average before and after says how much.
    ENVIRONMENT["load avg"] = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print_tables(rows, args, time.perf_counter() - started)
    return 0


def _rss_rows(args: argparse.Namespace, pg_problem: str | None, pg_url: Callable[[], Any]) -> list[Row]:
    rows: list[Row] = []
    label = f"Batchyard submit {args.rss_lines:,}-line JSONL"
    with tempfile.TemporaryDirectory(prefix="batchyard-rss-input-") as tmp:
        path = Path(tmp) / "input.jsonl"
        write_jsonl(path, args.rss_lines)
        _guarded(
            "rss sqlite",
            rows,
            lambda: measure_rss("SQLite", path, args.rss_lines, _SqliteUrl),
            Row(label, "SQLite", args.rss_lines),
        )
        if pg_problem:
            rows.append(Row(label, "PostgreSQL", args.rss_lines, skipped=pg_problem))
        else:
            _guarded(
                "rss postgres",
                rows,
                lambda: measure_rss("PostgreSQL", path, args.rss_lines, pg_url),
                Row(label, "PostgreSQL", args.rss_lines),
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
