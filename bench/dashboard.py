"""The dashboard in a real browser on a big database (not a test; prints two tables).

Section ``paint``: a fresh SQLite database gets 10,000 jobs and one job of 1,000,000 items (inserted with SQL, as
bench/api.py does), ``batchyard serve --no-workers`` serves it, and Debian's Chromium (through Playwright) opens the
Jobs page and the big job's page ``--runs`` times each in a fresh tab. Per page it reports the median and the
worst of: the HTML's response end (navigation timing), first paint and first contentful paint (the browser's paint
timings), and "rendered": the page module's ``performance.mark("batchyard:rendered")``, when the table or the job's
progress and first items are drawn from the data the HTML embeds (no extra request before it).

Section ``requests``: a fresh ``batchyard serve`` (with its worker) runs 5 slow jobs while one dashboard tab is
open for ``--seconds``; every request the tab makes is counted (the Server-Sent Events stream counts as one, it
stays open). Rows: the Jobs page showing 5 rows (the Active tab), the same page showing 50 rows (All, with 45
finished jobs besides), and one running job's page. Beside them, for comparison, what a dashboard that polls each
shown row every 2 s would make (computed: rows x 30 per minute), the way list pages without a push stream work.

    python bench/dashboard.py                 # both sections (about 6 minutes on 2 cores)
    python bench/dashboard.py --sections paint --runs 3
    python bench/dashboard.py --sections requests --seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
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
from batchyard.services.auth import AuthService, Role

sys.path.insert(0, str(Path(__file__).parent))
from api import fill

CHROMIUM = os.environ.get("BATCHYARD_CHROMIUM", "/usr/bin/chromium")
TARGET_PAINT_MS = 300.0
BIG_JOB_ITEMS = 1_000_000
ITEM_CHUNK = 50_000
LOGIN = re.compile(r"(http://127\.0\.0\.1:\d+)/login\?token=")
console = Console(width=max(150, Console().width))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(data_dir: Path, *args: str) -> Iterator[str]:
    """``batchyard serve`` on ``data_dir`` in a subprocess; yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", COLUMNS="200")
    log_path = data_dir / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchyard.cli.main", "serve", "--port", str(free_port()), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not (found := LOGIN.search(log_path.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield found[1]
        finally:
            proc.terminate()
            proc.wait(30)


def add_big_job(app: Batchyard, items: int) -> str:
    """One running job of ``items`` items, half of them succeeded, inserted in chunks."""
    from sqlalchemy import update

    from batchyard.store.schema import jobs as jobs_table

    (job_id,) = fill(app, 1, 0, owners=1, statuses=["running"])
    half = items // 2
    with app.store.db.write() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id)
            .values(total=items, succeeded=half, queued=items - half, claim_cursor=half, description="1M items")
        )
    sql = "INSERT INTO items (job_id, seq, key, payload, status, attempts, result) VALUES (?, ?, ?, ?, ?, ?, ?)"
    if app.store.db.is_postgres:
        sql = sql.replace("?", "%s")
    for start in range(0, items, ITEM_CHUNK):
        rows = [
            (
                job_id,
                seq,
                f"item-{seq:07d}",
                '{"n":1}',
                "succeeded" if seq < half else "queued",
                int(seq < half),
                '{"ok":true}' if seq < half else None,
            )
            for seq in range(start, min(items, start + ITEM_CHUNK))
        ]
        with app.store.db.write() as conn:
            app.store.db.driver(conn).cursor().executemany(sql, rows)
    return job_id


def admin_key(data_dir: Path) -> str:
    app = Batchyard(Settings(data_dir=data_dir))
    try:
        return AuthService(app.store).create_key("bench", Role.ADMIN)[0]
    finally:
        app.close()


def session_cookie(url: str, key: str) -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/session", json={"api_key": key}, timeout=30)
    return dict(response.cookies)


def browser() -> Any:
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    return manager, manager.chromium.launch(executable_path=CHROMIUM, headless=True)


TIMINGS_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = Object.fromEntries(performance.getEntriesByType("paint").map((p) => [p.name, p.startTime]));
  const mark = performance.getEntriesByName("batchyard:rendered")[0];
  return {html: nav.responseEnd, fp: paint["first-paint"], fcp: paint["first-contentful-paint"],
          rendered: mark ? mark.startTime : null};
}"""


def paint_section(args: argparse.Namespace) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        app = Batchyard(Settings(data_dir=data))
        started = time.monotonic()
        fill(app, args.jobs, 2)
        big = add_big_job(app, args.big_items)
        app.close()
        console.print(
            f"filled {args.jobs:,} jobs and a {args.big_items:,}-item job in {time.monotonic() - started:.0f} s"
        )
        key = admin_key(data)
        rows = []
        with serve(data, "--no-workers") as url:
            manager, chromium = browser()
            try:
                pages = (
                    (f"Jobs page ({args.jobs:,} jobs)", "/"),
                    (f"Job page ({args.big_items:,} items)", f"/jobs/{big}"),
                )
                for _, path in pages:  # the server's own first request (imports, templates, cold cache) is not measured
                    httpx.get(f"{url}{path}", cookies=session_cookie(url, key), timeout=60)
                for name, path in pages:
                    # One browser profile per page: the first load has an empty cache (a first visit), the others
                    # reuse it as a returning user's browser does (the versioned static files come from the cache).
                    context = chromium.new_context(base_url=url, viewport={"width": 1440, "height": 900})
                    context.request.post("/api/v1/session", data={"api_key": key})
                    samples = []
                    for _ in range(args.runs + 1):
                        page = context.new_page()
                        page.goto(path, wait_until="load")
                        page.wait_for_function("performance.getEntriesByName('batchyard:rendered').length > 0")
                        samples.append(page.evaluate(TIMINGS_JS))
                        page.close()
                    context.close()
                    for label, chosen in (("first visit", samples[:1]), (f"return visits (x{args.runs})", samples[1:])):
                        timings = [_stat([s[k] for s in chosen]) for k in ("html", "fp", "fcp", "rendered")]
                        rows.append([f"{name}, {label}", *timings, _verdict(chosen)])
            finally:
                chromium.close()
                manager.stop()
        return rows


def _stat(values: list[float | None]) -> str:
    real = [v for v in values if v is not None]
    if not real:
        return "n/a"
    return f"{statistics.median(real):.0f} ms (max {max(real):.0f})"


def _verdict(samples: list[dict[str, float | None]]) -> str:
    painted = [s["fcp"] for s in samples if s["fcp"] is not None]
    if not painted:
        return "no paint timing"
    missing = f" ({len(samples) - len(painted)} without paint timing)" if len(painted) < len(samples) else ""
    return ("ok" if statistics.median(painted) < TARGET_PAINT_MS else f"over {TARGET_PAINT_MS:.0f} ms") + missing


def requests_section(args: argparse.Namespace) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        key = admin_key(data)
        rows = []
        with serve(data) as url:
            headers = {"Authorization": f"Bearer {key}"}
            for n in range(45):
                httpx.post(f"{url}/api/v1/jobs", json={"handler": "echo", "items": [n]}, headers=headers, timeout=30)
            running = [
                httpx.post(
                    f"{url}/api/v1/jobs",
                    json={
                        "handler": "sleep",
                        "items": [{"ms": 1500}] * 2000,
                        "concurrency": 4,
                        "description": f"run {n}",
                    },
                    headers=headers,
                    timeout=60,
                ).json()["id"]
                for n in range(5)
            ]
            manager, chromium = browser()
            try:
                for name, path, shown in (
                    ("Jobs page, Active tab", "/?tab=active", 5),
                    ("Jobs page, All", "/", 50),
                    ("Job page (running)", f"/jobs/{running[0]}", 1),
                ):
                    context = chromium.new_context(base_url=url, viewport={"width": 1440, "height": 900})
                    context.request.post("/api/v1/session", data={"api_key": key})
                    page = context.new_page()
                    seen: list[str] = []
                    page.on("request", lambda request, seen=seen: seen.append(request.url))
                    page.goto(path)
                    page.wait_for_timeout(2000)  # the first load's own requests are not the steady rate
                    before = len(seen)
                    page.wait_for_timeout(args.seconds * 1000)
                    made = seen[before:]
                    per_minute = len(made) * 60 / args.seconds
                    kinds = sorted(
                        {re.sub(r"job_[0-9a-f]+", "{id}", re.sub(r"\?.*", "", u.split(url, 1)[-1])) for u in made}
                    )
                    rows.append([name, str(shown), f"{per_minute:.0f}", f"{shown * 30}", ", ".join(kinds) or "-"])
                    context.close()
            finally:
                chromium.close()
                manager.stop()
            for job_id in running:
                httpx.post(f"{url}/api/v1/jobs/{job_id}/cancel", headers=headers, timeout=30)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="paint,requests")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--big-items", type=int, default=BIG_JOB_ITEMS)
    parser.add_argument("--runs", type=int, default=7, help="page loads per page (median and max shown)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each page is watched for requests")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    load = os.getloadavg()[0]
    if "paint" in args.sections:
        table = Table(title=f"Time to first paint, SQLite (target: first contentful paint < {TARGET_PAINT_MS:.0f} ms)")
        for column in (
            "page",
            "HTML received",
            "first paint",
            "first contentful paint",
            "table/progress rendered",
            "verdict",
        ):
            table.add_column(column)
        for row in paint_section(args):
            table.add_row(*row)
        console.print(table)
    if "requests" in args.sections:
        table = Table(
            title=f"Requests per minute from one open dashboard tab while 5 jobs run ({args.seconds:.0f} s watched)"
        )
        for column in (
            "page",
            "rows shown",
            "requests/min (measured)",
            "per-row polling every 2 s (computed)",
            "what it requested",
        ):
            table.add_column(column)
        for row in requests_section(args):
            table.add_row(*row)
        console.print(table)
    console.print(f"1-minute load average: {load:.2f} before, {os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
