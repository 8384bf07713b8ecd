"""The Dramatiq side of the comparison: one no-op actor that counts itself in Redis.

Run by ``engine.py`` as ``python -m dramatiq _dramatiq_tasks --processes 1 --threads 8``;
``BENCH_REDIS_URL`` names the (dedicated, flushed) Redis database for both the broker and the counter.
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
COUNTER = "bench:dramatiq:done"

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)
counter = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor
def noop() -> None:
    counter.incr(COUNTER)
