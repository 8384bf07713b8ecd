"""Retention: delete finished jobs past an age, with everything they own, and uploads past their expiry.

``batchyard prune`` and maintenance (``BATCHYARD_JOB_RETENTION_DAYS``) run this same code. A job goes when it is
finished (completed, failed, cancelled or expired) and finished before the cutoff, whoever owns it: its row at once
(it answers 404 from then on), then its items, events and progress samples in chunks of
``BATCHYARD_PRUNE_CHUNK_ROWS`` rows, one short transaction each (see store/retention.py), then its result files and
artifacts. Running, paused and queued jobs are never touched, however old. Uploaded files go when their
``expires_at`` has passed (uploads without one are kept until deleted).

A dry run counts from the same queries: the jobs' ``total`` counters for items, the files on disk for files and
bytes, so ``prune --dry-run`` says what the real run then removes (unless jobs finish or age in between).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from batchyard import metrics
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.services.files import upload_name
from batchyard.settings import Settings
from batchyard.store import Store

log = logging.getLogger("batchyard.services.retention")
PAGE = 200  # jobs (or uploads) looked at per query


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    older_than_seconds: float | None
    dry_run: bool
    jobs: int = 0
    items: int = 0
    uploads: int = 0
    files: int = 0  # result files and artifacts of the jobs, and the expired uploads
    bytes: int = 0
    done: bool = True  # False: a time budget ended the run first; the next run carries on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: PruneReport) -> None:
        for name in ("jobs", "items", "uploads", "files", "bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


Progress = Callable[[int, int], None]  # (jobs done, jobs in all)


class RetentionService:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings

    @property
    def default_age_seconds(self) -> float | None:
        days = self.settings.job_retention_days
        return None if days is None else days * 86400.0

    def plan(self, older_than_seconds: float | None) -> PruneReport:
        """What :meth:`prune` would remove now (``prune --dry-run``): nothing is changed."""
        report = PruneReport(older_than_seconds, dry_run=True)
        if older_than_seconds is not None:
            cutoff = self.store.retention.clock() - older_than_seconds
            report.jobs, report.items = self.store.retention.count_prunable(cutoff)
            after = None
            while page := self.store.retention.prunable_jobs(cutoff, PAGE, after):
                for job_id in page:
                    files, size = self.storage.usage(job_prefix(job_id))
                    report.files += files
                    report.bytes += size
                after = page[-1]
        self._count_expired_uploads(report)
        return report

    def jobs_to_prune(self, older_than_seconds: float) -> int:
        cutoff = self.store.retention.clock() - older_than_seconds
        return self.store.retention.count_prunable(cutoff)[0]

    def prune(
        self, older_than_seconds: float | None, *, deadline: float | None = None, progress: Progress | None = None
    ) -> PruneReport:
        """Delete finished jobs that finished more than ``older_than_seconds`` ago (None: no jobs) and expired
        uploads. With ``deadline`` (a ``time.monotonic()`` value) it stops after the chunk that passes it and says
        ``done=False``; the next call carries on."""
        report = PruneReport(older_than_seconds, dry_run=False)
        chunk = self.settings.prune_chunk_rows
        # Jobs a process tombstoned and did not get to empty (it died, or its budget ended) come first.
        if not self._drain_purges(report, chunk, deadline):
            return self._done(report, done=False)
        if older_than_seconds is not None:
            cutoff = self.store.retention.clock() - older_than_seconds
            total = self.store.retention.count_prunable(cutoff)[0]
            after = None
            while page := self.store.retention.prunable_jobs(cutoff, PAGE, after):
                after = page[-1]
                for job_id in page:
                    files, size = self.storage.usage(job_prefix(job_id))
                    if not self.store.retention.tombstone(job_id, cutoff):
                        continue  # retried, deleted or pruned by someone else meanwhile
                    report.jobs += 1
                    report.files += files
                    report.bytes += size
                    finished = self._purge(job_id, report, chunk, deadline)
                    if progress is not None:
                        progress(report.jobs, max(total, report.jobs))
                    if not finished:
                        return self._done(report, done=False)
        self._prune_expired_uploads(report, deadline)
        return self._done(report, done=not _past(deadline))

    def _done(self, report: PruneReport, *, done: bool) -> PruneReport:
        report.done = done
        metrics.record_pruned(report.jobs, report.items, report.files, report.bytes)
        if report.jobs or report.uploads:
            log.info(
                "pruned %d job(s) (%d items), %d expired upload(s): %d file(s), %d bytes",
                report.jobs,
                report.items,
                report.uploads,
                report.files,
                report.bytes,
            )
        return report

    def _drain_purges(self, report: PruneReport, chunk: int, deadline: float | None) -> bool:
        while pending := self.store.retention.pending_purges():
            for job_id in pending:
                if not self._purge(job_id, report, chunk, deadline):
                    return False
        return True

    def _purge(self, job_id: str, report: PruneReport, chunk: int, deadline: float | None) -> bool:
        """Empty a tombstoned job chunk by chunk, then its files; False if the deadline came first."""
        while True:
            items, rows = self.store.retention.delete_chunk(job_id, chunk)
            report.items += items
            if not rows:
                break
            if _past(deadline):
                return False
        self.storage.delete_prefix(job_prefix(job_id))
        self.store.retention.finish_purge(job_id)
        return True

    def _count_expired_uploads(self, report: PruneReport) -> None:
        after = None
        while page := self.store.retention.expired_files(PAGE, after):
            for _, size in page:
                report.uploads += 1
                report.files += 1
                report.bytes += size
            after = page[-1][0]

    def _prune_expired_uploads(self, report: PruneReport, deadline: float | None) -> None:
        after = None
        while page := self.store.retention.expired_files(PAGE, after):
            for file_id, size in page:
                if self.store.retention.delete_expired_file(file_id):
                    self.storage.delete(upload_name(file_id))
                    report.uploads += 1
                    report.files += 1
                    report.bytes += size
            after = page[-1][0]
            if _past(deadline):
                return


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
