"""Which jobs changed, and when: what the live feed (``GET /api/v1/stream``) reads, with the owner scope applied.

The feed's correctness argument (timestamps versus commit order, the lookback) lives with the feed in
:mod:`batchyard.api.feed`; this is only its access to the data.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchyard.core.records import JobRecord
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.store import Store


class ActivityService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def clock(self) -> float:
        """The database's clock (epoch seconds): the time ``last_activity_at`` is written in."""
        return self.store.stats.database_clock()

    def touched_since(self, since: float, limit: int, *, after_id: str | None = None) -> list[tuple[str, float]]:
        """(job id, last activity) of every job touched at or after ``since``, oldest first, for the one
        poller that serves every subscriber (each is then sent only the jobs it may see)."""
        return self.store.stats.recent_activity(since, limit, after_id=after_id)

    def jobs(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """The jobs that still exist among ``job_ids``."""
        return self.store.stats.jobs_by_ids(job_ids)

    def changed_since(
        self, since: float, principal: Principal = LOCAL_ADMIN, *, job_id: str | None = None, limit: int = 500
    ) -> tuple[list[JobRecord], bool]:
        """The jobs ``principal`` may see changed at or after ``since`` (the ``limit`` most recent, oldest first),
        and whether older ones were left out."""
        return self.store.stats.jobs_changed_since(since, owner=principal.owner_scope(), job_id=job_id, limit=limit)
