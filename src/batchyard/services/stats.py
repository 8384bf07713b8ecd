"""Stats over the jobs a caller can see: which jobs they cover (the owner scope) and the numbers the store sums."""

from __future__ import annotations

from batchyard.core.records import StatsFilter, StatsSnapshot
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.store import Store


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
