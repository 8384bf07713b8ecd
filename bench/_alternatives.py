"""The alternatives in ``engine.py``'s table: Dramatiq and Huey on Redis, run now on this machine.

Each run: flush a dedicated Redis database, start the queue's consumer as a subprocess (one process, eight
threads), wait until it has processed one warm-up task, then time from the first enqueue of ``n`` no-op tasks
until the last one has incremented the Redis counter. The consumer is stopped with SIGTERM afterwards and the
database flushed again.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
POLL_SECONDS = 0.01
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Queue:
    name: str
    module: str  # the task module in bench/
    counter: str  # the Redis key its task increments
    imports: tuple[str, ...]
    install: str
    consumer: list[str]
    consumer_desc: str


QUEUES = {
    "dramatiq": Queue(
        name="Dramatiq",
        module="_dramatiq_tasks",
        counter="bench:dramatiq:done",
        imports=("dramatiq", "redis"),
        install="pip install 'dramatiq[redis]' redis",
        consumer=[sys.executable, "-m", "dramatiq", "_dramatiq_tasks", "--processes", "1", "--threads", "8"],
        consumer_desc="dramatiq --processes 1 --threads 8",
    ),
    "huey": Queue(
        name="Huey",
        module="_huey_tasks",
        counter="bench:huey:done",
        imports=("huey", "redis"),
        install="pip install huey redis",
        consumer=[sys.executable, "-m", "huey.bin.huey_consumer", "_huey_tasks.huey", "-w", "8", "-k", "thread"],
        consumer_desc="RedisHuey, huey_consumer -w 8 -k thread",
    ),
}

# Measured earlier on this machine with the same shape (20,000 no-op tasks, one worker process); not rerun.
REFERENCE_RATES = {"Celery": 530.0, "Procrastinate": 330.0}


@dataclass
class AlternativeResult:
    name: str
    items: int
    rates: list[float] = field(default_factory=list)
    enqueue_seconds: list[float] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


def missing_requirement(queue: Queue) -> str | None:
    """The install hint when one of the queue's packages is missing, else None."""
    if any(importlib.util.find_spec(name) is None for name in queue.imports):
        return queue.install
    return None


def redis_problem(redis_url: str) -> str | None:
    """Why Redis can't be used (None when it answers)."""
    try:
        import redis
    except ImportError:
        return "pip install redis"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {redis_url}: {exc}"
    return None


def run_alternative(
    key: str, n: int, repeat: int, redis_url: str = DEFAULT_REDIS_URL, log: Callable[[str], None] = print
) -> AlternativeResult:
    queue = QUEUES[key]
    result = AlternativeResult(queue.name, n)
    missing = missing_requirement(queue)
    if missing:
        result.skipped = missing
        return result
    problem = redis_problem(redis_url)
    if problem:
        result.skipped = problem
        return result
    os.environ["BENCH_REDIS_URL"] = redis_url  # read by the task module, here and in the consumer
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    tasks = importlib.import_module(queue.module)
    for run in range(repeat):
        seconds, enqueue = _one_run(queue, tasks, n, redis_url)
        result.rates.append(n / seconds)
        result.enqueue_seconds.append(enqueue)
        log(f"{queue.name} run {run + 1}/{repeat}: {n / seconds:,.0f} tasks/s (enqueue {enqueue:.2f} s)")
    result.notes.append(queue.consumer_desc)
    return result


def _enqueue(tasks: Any) -> None:
    if hasattr(tasks.noop, "send"):  # a Dramatiq actor
        tasks.noop.send()
    else:  # a Huey task: calling it enqueues
        tasks.noop()


def _one_run(queue: Queue, tasks: Any, n: int, redis_url: str) -> tuple[float, float]:
    """(seconds from first enqueue to last done, seconds to enqueue) for one run with a fresh consumer."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {
        **os.environ,
        "BENCH_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryFile() as log_file:
        consumer = subprocess.Popen(queue.consumer, cwd=BENCH_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            _enqueue(tasks)  # warm-up: the consumer is ready once this one is done
            _wait_for(client, queue.counter, 1, READY_TIMEOUT, consumer, log_file)
            client.delete(queue.counter)
            started = time.perf_counter()
            for _ in range(n):
                _enqueue(tasks)
            enqueued = time.perf_counter()
            _wait_for(client, queue.counter, n, 60 + n / 50, consumer, log_file)
            finished = time.perf_counter()
        finally:
            _stop(consumer)
            client.flushdb()
    return finished - started, enqueued - started


def _wait_for(
    client: Any, key: str, target: int, timeout: float, consumer: subprocess.Popen[bytes], log_file: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < target:
        if consumer.poll() is not None:
            raise RuntimeError(f"consumer exited with {consumer.returncode}: {_tail(log_file)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} below {target} after {timeout:.0f}s: {_tail(log_file)}")
        time.sleep(POLL_SECONDS)


def _stop(consumer: subprocess.Popen[bytes]) -> None:
    if consumer.poll() is None:
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()


def _tail(log_file: IO[bytes], chars: int = 2000) -> str:
    log_file.flush()
    log_file.seek(0)
    return log_file.read().decode(errors="replace")[-chars:]
