"""Who may read ``/metrics``, and the database gauges it adds to this process's metrics (see batchyard/metrics.py)."""

from __future__ import annotations

from batchyard.core.lifecycle import CLAIMABLE_JOB_STATUSES, TERMINAL_JOB_STATUSES, JobStatus
from batchyard.errors import Forbidden
from batchyard.metrics import DatabaseGauges, QueueRow, exposition
from batchyard.services.auth import Principal
from batchyard.settings import Settings
from batchyard.store import Store


class MetricsService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    @property
    def public(self) -> bool:
        """``BATCHYARD_METRICS_PUBLIC=true``: anyone who reaches the server may scrape it, without a key."""
        return self.settings.metrics_public

    def check_reader(self, principal: Principal) -> None:
        """Metrics show every owner's queue: an admin key, unless they are public."""
        if not self.public and not principal.is_admin:
            raise Forbidden(
                "metrics need an admin key (they cover every owner); "
                "or set BATCHYARD_METRICS_PUBLIC=true to let Prometheus scrape without one"
            )

    def queue_rows(self) -> list[QueueRow]:
        return [QueueRow(*row) for row in self.store.stats.unfinished_by_handler()]

    def gauges(self) -> DatabaseGauges:
        unfinished = [s.value for s in JobStatus if s not in TERMINAL_JOB_STATUSES]
        return DatabaseGauges(self.queue_rows, claimable=CLAIMABLE_JOB_STATUSES, statuses=unfinished)

    def exposition(self) -> bytes:
        """This process's metrics and the database gauges, in Prometheus text format."""
        return exposition(self.gauges())
