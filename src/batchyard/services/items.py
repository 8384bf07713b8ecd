"""A job's items as users read them: page by page in input order (optionally by status), or one by key."""

from __future__ import annotations

from collections.abc import Sequence

from batchyard.core.records import ItemRecord
from batchyard.errors import NotFound
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.services.jobs import JobService
from batchyard.store import Store

# Items have no status index, so a status filter reads rows; one page reads at most this many input positions
# and may then come back short (even empty) with more to come. Unfiltered pages read exactly one page.
ITEM_SCAN_WINDOW = 50_000


class ItemService:
    def __init__(self, store: Store, jobs: JobService) -> None:
        self.store = store
        self.jobs = jobs

    def page(
        self,
        job_id: str,
        principal: Principal = LOCAL_ADMIN,
        *,
        statuses: Sequence[str] = (),
        after_seq: int = -1,
        limit: int = 100,
    ) -> tuple[list[ItemRecord], int | None]:
        """Up to ``limit`` items after input position ``after_seq`` (in ``statuses``, if given), and the position
        the next page starts after (None at the end). Payloads are left out."""
        job = self.jobs.job_record(job_id, principal)
        if statuses:
            if not sum(getattr(job, status) for status in statuses):  # the job's counters say: none at all
                return [], None
            max_seq: int | None = after_seq + ITEM_SCAN_WINDOW
        else:
            max_seq = None
        page = self.store.items.item_page(
            job.id, after_seq=after_seq, limit=limit + 1, statuses=statuses, max_seq=max_seq
        )
        if len(page) > limit:
            return page[:limit], page[limit - 1].seq
        if max_seq is not None and max_seq < job.total - 1:  # input positions are 0 .. total-1
            return page, max_seq
        return page, None

    def get(self, job_id: str, key: str, principal: Principal = LOCAL_ADMIN) -> ItemRecord:
        """One item by key, with its payload."""
        job = self.jobs.job_record(job_id, principal)
        if "\x00" in key:
            raise NotFound(f"job {job.id!r} has no item {key!r}", param="key")
        return self.store.items.get_item(job.id, key)
