"""Error groups: a job's failed items grouped by their error signature (:mod:`batchyard.core.errorsig`), each
with its count, first and last seen and a few sample items; one group's items for export; retrying one group.

The signature is written on an item when it fails (``store.claims``), so grouping is a GROUP BY in the database
over an index of failed items only: a job with a million items and a hundred thousand failures is never loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from batchyard.core.errorsig import describe
from batchyard.core.records import ErrorGroupRecord, ItemRecord
from batchyard.errors import NotFound
from batchyard.services.auth import LOCAL_ADMIN, Principal
from batchyard.services.jobs import JobService, JobView
from batchyard.store import Store

SAMPLES_PER_GROUP = 3


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """One group as shown: its numbers, what names it (from its first sample) and its first samples."""

    record: ErrorGroupRecord
    error_type: str | None
    code: str | None
    message: str  # normalized
    samples: list[ItemRecord]


class ErrorGroupService:
    def __init__(self, store: Store, jobs: JobService) -> None:
        self.store = store
        self.jobs = jobs

    def page(
        self,
        job_id: str,
        principal: Principal = LOCAL_ADMIN,
        *,
        limit: int = 20,
        after: tuple[int, str] | None = None,
        samples: int = SAMPLES_PER_GROUP,
    ) -> tuple[list[ErrorGroup], tuple[int, str] | None]:
        """Up to ``limit`` groups, largest first, after the (count, signature) ``after``; and the position the next
        page starts after (None: no more). Counts are read now: a page taken while items fail may shift a little."""
        job = self.jobs.job_record(job_id, principal)
        records = self.store.items.error_groups(job.id, limit=limit + 1, after=after)
        groups = [self._group(job.id, r, samples) for r in records[:limit]]
        last = records[limit - 1] if len(records) > limit else None
        return groups, None if last is None else (last.count, last.signature)

    def get(
        self, job_id: str, signature: str, principal: Principal = LOCAL_ADMIN, *, samples: int = SAMPLES_PER_GROUP
    ) -> ErrorGroup:
        job = self.jobs.job_record(job_id, principal)
        return self._group(job.id, self._record(job.id, signature), samples)

    def items(self, job_id: str, signature: str, principal: Principal = LOCAL_ADMIN) -> Iterator[ItemRecord]:
        """Every failed item of the group, in input order, with its payload (checked before the first is read)."""
        job = self.jobs.job_record(job_id, principal)
        self._record(job.id, signature)
        return self.store.items.iter_error_group(job.id, signature)

    def retry(
        self, job_id: str, signature: str, principal: Principal = LOCAL_ADMIN, *, actor: str | None = None
    ) -> tuple[JobView, int]:
        """Queue the group's failed items again (fresh attempts); the job's other failures stay as they are."""
        return self.jobs.retry_failed(job_id, principal, actor=actor, error_signature=signature)

    def _record(self, job_id: str, signature: str) -> ErrorGroupRecord:
        record = self.store.items.error_group(job_id, signature)
        if record is None:
            raise NotFound(f"job {job_id!r} has no failed items in error group {signature!r}", param="signature")
        return record

    def _group(self, job_id: str, record: ErrorGroupRecord, samples: int) -> ErrorGroup:
        first = self.store.items.error_group_items(job_id, record.signature, limit=max(1, samples))
        error_type, code, message = describe(first[0].error if first else None)
        return ErrorGroup(record, error_type, code, message, first[:samples])
