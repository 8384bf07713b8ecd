"""``batchyard run`` against a raw asyncio + aiohttp client, and serve + the openai SDK (not a test; prints a table).

Every row sends the same N chat completion requests to one ``batchyard mock-upstream`` subprocess answering after
~20 ms (log-normal spread 0.25), at the same concurrency, in the same run:

- **mock alone**: the raw client at a high concurrency against a mock with no latency: the most the mock answers
  per second on this machine. It must be far above every other row, or the mock is the bottleneck.
- **raw asyncio + aiohttp**: a minimal hand-written client (one session, a semaphore, read each answer, keep the
  JSON), the ceiling for any Python runner here.
- **batchyard run**: the CLI as a user runs it (a subprocess on a fresh data dir): input checked, job created,
  requests sent by the in-process worker, results recorded in SQLite, output file written. ``wall`` is the whole
  command; ``processing`` is the job's own first start to last finish (from its record).
- **serve + openai SDK** (``/v1/files`` + ``/v1/batches``): ``batchyard serve --upstream`` in a subprocess and the
  official SDK: upload, create, poll every 0.25 s, download the output file. ``wall`` is upload to downloaded.

    python bench/openai_runner.py                         # 20,000 requests at 256 in flight (a few minutes)
    python bench/openai_runner.py --requests 5000 --concurrency 64
    python bench/openai_runner.py --profile               # and where batchyard's time goes (cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

CLI = [sys.executable, "-m", "batchyard.cli.main"]
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+/v1)")
LOGIN = re.compile(r"(http://127\.0\.0\.1:\d+)/login\?token=")
console = Console(width=max(140, Console().width))


@dataclass
class Row:
    name: str
    concurrency: int
    requests: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Process:
    """A subprocess whose output is drained (pipes never fill) and searchable."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search("".join(self.lines))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args!r} exited:\n{''.join(self.lines)}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.process.args!r} did not start:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    return env


@contextlib.contextmanager
def mock_upstream(latency_ms: float) -> Iterator[str]:
    mock = Process([*CLI, "mock-upstream", "--port", "0", "--latency-ms", str(latency_ms)], clean_env())
    try:
        yield mock.wait_for(READY)
    finally:
        mock.stop()


def chat_line(i: int) -> dict[str, Any]:
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": f"Say hello to request number {i}"}]}
    return {"custom_id": f"request-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def write_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps(chat_line(i)) + "\n")
    return path


# -- the raw client -----------------------------------------------------------------------------------------------


def raw_client(url: str, n: int, concurrency: int) -> float:
    """Seconds for a minimal asyncio + aiohttp client to send ``n`` requests, ``concurrency`` at a time."""
    import aiohttp

    async def main() -> float:
        lines = [chat_line(i) for i in range(n)]
        results: list[Any] = [None] * n
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            next_index = 0

            async def lane() -> None:
                nonlocal next_index
                while next_index < n:
                    i = next_index
                    next_index += 1
                    data = json.dumps(lines[i]["body"]).encode()
                    async with session.post(
                        f"{url}/chat/completions", data=data, headers={"Content-Type": "application/json"}
                    ) as response:
                        results[i] = json.loads(await response.read())
                        assert response.status == 200, response.status

            start = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return time.perf_counter() - start

    return asyncio.run(main())


# -- batchyard run ------------------------------------------------------------------------------------------------


def batchyard_run(url: str, requests: Path, concurrency: int, workdir: Path) -> tuple[float, float, str]:
    """(wall seconds of the command, processing seconds from the job's record, its summary line)."""
    data = workdir / "run-data"
    out = workdir / "run-out.jsonl"
    start = time.perf_counter()
    done = subprocess.run(
        [*CLI, "run", "-i", str(requests), "-o", str(out), "--upstream", url, "--concurrency", str(concurrency)],
        env=clean_env(BATCHYARD_DATA_DIR=str(data)),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"batchyard run failed:\n{done.stderr}")
    lines = sum(1 for _ in out.open())
    if lines != sum(1 for _ in requests.open()):
        raise RuntimeError(f"batchyard run wrote {lines} lines")
    processing = _processing_seconds(data)
    summary = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    return wall, processing, summary


def _processing_seconds(data: Path) -> float:
    """First item started to last item finished, from the run's database (the worker's own time)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(data / "batchyard.db")) as db:
        first, last = db.execute("SELECT MIN(started_at), MAX(finished_at) FROM items").fetchone()
    return float(last - first)


# -- serve + the SDK ----------------------------------------------------------------------------------------------


def serve_and_sdk(url: str, requests: Path, concurrency: int, workdir: Path) -> float:
    from openai import OpenAI

    data = workdir / "serve-data"
    server = Process(
        [*CLI, "serve", "--port", "0", "--upstream", url, "--concurrency", str(concurrency), "--log-level", "warning"],
        clean_env(BATCHYARD_DATA_DIR=str(data)),
    )
    try:
        base = server.wait_for(LOGIN)
        made = subprocess.run(
            [*CLI, "keys", "create", "--owner", "bench", "--role", "member"],
            env=clean_env(BATCHYARD_DATA_DIR=str(data)),
            capture_output=True,
            text=True,
            check=True,
        )
        client = OpenAI(base_url=f"{base}/v1", api_key=made.stdout.strip(), max_retries=0)
        start = time.perf_counter()
        with requests.open("rb") as f:
            uploaded = client.files.create(file=f, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.25)
            batch = client.batches.retrieve(batch.id)
        if batch.status != "completed" or batch.output_file_id is None:
            raise RuntimeError(f"batch ended {batch.status}: {batch.errors}")
        content = client.files.content(batch.output_file_id).content
        seconds = time.perf_counter() - start
        assert content.count(b"\n") == batch.request_counts.total if batch.request_counts else True
        return seconds
    finally:
        server.stop()


# -- profile ------------------------------------------------------------------------------------------------------


def profile_run(url: str, requests: Path, concurrency: int, workdir: Path, top: int) -> str:
    """cProfile of the worker that ``batchyard run`` starts, run on this thread (where cProfile sees it)."""
    from batchyard import Batchyard, Settings

    app = Batchyard(Settings(data_dir=workdir / "profile-data", upstream_url=url))
    started = app.runs.start(requests, workdir / "profile-out.jsonl")
    worker = app.worker(handlers=["openai"], job_ids=[started.view.job.id], concurrency=concurrency)

    def stop_when_done() -> None:
        while not app.service.get(started.view.job.id).finished:
            time.sleep(0.1)
        worker.request_stop()

    threading.Thread(target=stop_when_done, daemon=True).start()
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(worker.run())
    profiler.disable()
    app.close()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


# -- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--skip-serve", action="store_true", help="leave out the serve + SDK row")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of batchyard's worker")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-openai-") as tmp:
        workdir = Path(tmp)
        requests = write_input(workdir / "requests.jsonl", n)
        with mock_upstream(0) as fast:
            raw_client(fast, 500, 64)  # warm up
            rows.append(Row("mock alone (no latency, raw client)", 512, n, raw_client(fast, n, 512)))
        with mock_upstream(args.latency_ms) as url:
            raw_client(url, 500, 64)
            rows.append(Row("raw asyncio + aiohttp", c, n, raw_client(url, n, c)))
            wall, processing, summary = batchyard_run(url, requests, c, workdir)
            rows.append(Row("batchyard run (whole command)", c, n, wall, summary))
            rows.append(Row("batchyard run (processing)", c, n, processing, "first start to last finish"))
            if not args.skip_serve:
                try:
                    rows.append(Row("serve + openai SDK (/v1 batches)", c, n, serve_and_sdk(url, requests, c, workdir)))
                except Exception as exc:  # the row says why instead of hiding the others
                    rows.append(Row("serve + openai SDK (/v1 batches)", c, n, 0.0, f"failed: {exc}"))
            profile = profile_run(url, requests, c, workdir, args.top) if args.profile else ""
    raw = next(r.rate for r in rows if r.name.startswith("raw"))
    table = Table(title=f"{n:,} chat completions, mock-upstream at {args.latency_ms:g} ms")
    for column in ("row", "in flight", "seconds", "requests/s", "% of raw client", "notes"):
        table.add_column(column, justify="right" if column not in ("row", "notes") else "left")
    for row in rows:
        share = f"{100 * row.rate / raw:.0f} %" if raw and not row.name.startswith("mock") else ""
        table.add_row(row.name, str(row.concurrency), f"{row.seconds:.2f}", f"{row.rate:,.0f}", share, row.note)
    console.print(table)
    console.print(
        f"Python {sys.version.split()[0]} · {os.cpu_count()} cores · load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    if profile:
        console.print("[bold]Where batchyard run's worker spends its time[/] (cProfile, by own time):")
        console.print(profile, markup=False, highlight=False)


if __name__ == "__main__":
    main()
