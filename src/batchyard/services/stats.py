"""Stats over the jobs a caller can see: which jobs they cover (the owner scope) and the numbers the store sums."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from batchyard.core.history import BUCKETS, DAY, Period, bucket_count
from batchyard.core.records import JobFilter, JobRecord, StatsFilter, StatsSnapshot
from batchyard.errors import InvalidRequest
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.store import Store

MAX_HISTORY_BUCKETS = 1000
DEFAULT_HISTORY_SECONDS = 7 * DAY


@dataclass(frozen=True, slots=True)
class History:
    """Finished jobs over a range: per bucket, in total, and the latest ones."""

    where: JobFilter  # the owner scope applied
    since: float
    until: float
    bucket: str  # hour | day
    buckets: list[Period]
    total: Period
    recent: list[JobRecord]


class StatsService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def snapshot(
        self,
        principal: Principal = LOCAL_ADMIN,
        *,
        owner: str | None = None,
        project: str | None = None,
        handler: str | None = None,
        since: float | None = None,
        recent_seconds: float,
        throughput_seconds: float,
    ) -> tuple[StatsFilter, StatsSnapshot]:
        """(the jobs counted, their numbers). Members and viewers see their own owner's jobs and may not name
        another owner (Forbidden); admins see every owner's, or one's with ``owner``."""
        scope = StatsFilter(
            owner=principal.owner_filter(owner, "stats"), project=project, handler=handler, created_since=since
        )
        return scope, self.store.stats.job_stats(
            scope, recent_seconds=recent_seconds, throughput_seconds=throughput_seconds
        )

    def history(
        self,
        principal: Principal = LOCAL_ADMIN,
        where: JobFilter | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: str | None = None,
        recent: int = 20,
    ) -> History:
        """Jobs that finished in [since, until) (default: the last 7 days), matching ``where``, summed per hour or
        day (default: hours for a range up to 2 days, else days) from their counters; and the ``recent`` latest.
        Members and viewers see their own owner's jobs (naming another owner is Forbidden)."""
        scope = dataclasses.replace(where or JobFilter(), owner=principal.owner_filter((where or JobFilter()).owner))
        until = time.time() if until is None else until
        since = until - DEFAULT_HISTORY_SECONDS if since is None else since
        if since >= until:
            raise InvalidRequest("since must be before until", param="since")
        if bucket is None:
            bucket = "hour" if until - since <= 2 * DAY else "day"
        if bucket not in BUCKETS:
            raise InvalidRequest(f"bucket is one of {', '.join(BUCKETS)}", param="bucket")
        if bucket_count(since, until, BUCKETS[bucket]) > MAX_HISTORY_BUCKETS:
            raise InvalidRequest(
                f"more than {MAX_HISTORY_BUCKETS} {bucket}s between since and until; use bucket=day or a shorter range",
                param="bucket",
            )
        buckets, total = self.store.stats.history(scope, since, until, BUCKETS[bucket])
        latest = self.store.stats.recently_finished(scope, since, until, recent) if recent else []
        return History(scope, since, until, bucket, buckets, total, latest)
