"""The Huey side of the comparison: one no-op task that counts itself in Redis.

Run by ``engine.py`` as ``huey_consumer _huey_tasks.huey -w 8 -k thread``;
``BENCH_REDIS_URL`` names the (dedicated, flushed) Redis database for both the queue and the counter.
"""

from __future__ import annotations

import os

import redis
from huey import RedisHuey

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
COUNTER = "bench:huey:done"

huey = RedisHuey("batchyard-bench", url=REDIS_URL, results=False)
counter = redis.Redis.from_url(REDIS_URL)


@huey.task()
def noop() -> None:
    counter.incr(COUNTER)
