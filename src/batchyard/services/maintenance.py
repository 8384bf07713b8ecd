"""Maintenance: safe to run in every process at once (each step claims its work with a conditional update).

One round: rescue expired leases, check the input of OpenAI batches still validating, expire jobs past their
window, write result files of finished jobs (and an OpenAI batch's output and error files), record progress
samples, mark workers that stopped reporting as lost, delete files past their expiry, and delete finished jobs past
their retention (services/retention.py, a bounded share of each round).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from batchyard import metrics
from batchyard.core.lifecycle import Action
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.data.results import write_result_files
from batchyard.errors import NotFound
from batchyard.services.openai_batches import OpenAIBatchService
from batchyard.services.retention import RetentionService
from batchyard.settings import Settings
from batchyard.store import Store

log = logging.getLogger("batchyard.services.maintenance")
PRUNE_WORKERS_AFTER_SECONDS = 24 * 3600.0
EXPIRED_FILES_CHECK_SECONDS = 60.0
NOTIFICATION_LOG_DAYS = 30  # delivered and given-up notifications (and their delivery log) are kept this long
PRUNE_ROUND_SECONDS = 1.0  # retention's share of one round; a big job is pruned over several rounds


@dataclass
class MaintenanceReport:
    rescued: int = 0
    expired_jobs: int = 0
    files_written: int = 0
    samples: int = 0
    batches_validated: int = 0
    files_expired: int = 0
    pruned_jobs: int = 0
    quota_resumed: int = 0


class Maintenance:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self._last_sample = 0.0
        self._last_worker_check = 0.0
        self._last_files_check = 0.0
        self.openai = OpenAIBatchService(store, storage, settings)
        self.retention = RetentionService(store, storage, settings)
        self._last_prune = -settings.prune_interval_seconds  # the first round looks at once
        self._prune_more = False

    def run_once(self) -> MaintenanceReport:
        report = MaintenanceReport()
        report.rescued = self.store.claims.rescue_expired_leases(max_rescues=self.settings.max_rescues)
        report.batches_validated = self.openai.validate_pending()
        report.expired_jobs = self.expire_jobs()
        report.files_written = self.write_pending_files()
        report.quota_resumed = len(self.store.quotas.resume_due())  # a new period began, or a quota went away
        now = time.monotonic()
        if now - self._last_sample >= self.settings.sample_interval_seconds:
            self._last_sample = now
            report.samples = self.store.upkeep.record_progress_samples(self.settings.sample_interval_seconds)
        if now - self._last_worker_check >= self.settings.worker_stale_seconds / 4:
            self._last_worker_check = now
            self.store.workers.mark_lost_workers(self.settings.worker_stale_seconds)
            self.store.workers.prune_workers(PRUNE_WORKERS_AFTER_SECONDS)
            self.store.progress.clear_stale()  # progress reports of items that no longer run (never shown anyway)
            self.store.quotas.prune_usage()  # usage buckets of periods long gone
        if now - self._last_files_check >= EXPIRED_FILES_CHECK_SECONDS:
            self._last_files_check = now
            report.files_expired = self.openai.delete_expired_files()
        if self._prune_more or now - self._last_prune >= self.settings.prune_interval_seconds:
            self._last_prune = now
            report.pruned_jobs = self.prune()
            self.store.outbox.prune_settled(NOTIFICATION_LOG_DAYS * 86400.0)
        return report

    def prune(self) -> int:
        """Retention (``BATCHYARD_JOB_RETENTION_DAYS``; expired uploads always), at most PRUNE_ROUND_SECONDS of it:
        what is left goes in the next rounds."""
        pruned = self.retention.prune(
            self.retention.default_age_seconds, deadline=time.monotonic() + PRUNE_ROUND_SECONDS
        )
        self._prune_more = not pruned.done
        return pruned.jobs

    def expire_jobs(self) -> int:
        n = 0
        for job_id in self.store.upkeep.jobs_past_expiry():
            error = {"code": "expired", "message": "the job's completion window passed before it finished"}
            n += self.store.jobs.stop_job(job_id, Action.EXPIRE, error, actor="maintenance")
        return n

    def write_pending_files(self) -> int:
        n = 0
        for job_id in self.store.upkeep.jobs_needing_files():
            lease = self.settings.lease_seconds
            if not self.store.upkeep.claim_files(job_id, lease):
                continue
            started = time.perf_counter()
            # An earlier writer that died mid-write left its temporary files; a live one touches its own.
            stale = self.storage.remove_stale_temp_files(job_prefix(job_id), older_than=lease)
            if stale:
                log.info(
                    "removed %d half-written file(s) of %s left by a writer that died",
                    stale,
                    job_id,
                    extra={"job_id": job_id},
                )
            keeper = _LeaseKeeper(self.store, job_id, lease)
            files = write_result_files(self.store, self.storage, job_id, keeper)
            self.openai.write_batch_files(job_id, keeper)  # an OpenAI batch's own files, before it completes
            for meta in files.values():  # with local storage only this host's data dir has them: say where
                meta["host"] = socket.gethostname()
            self.store.upkeep.files_written(job_id, files)
            log.debug(
                "wrote result files of %s in %.2fs", job_id, time.perf_counter() - started, extra={"job_id": job_id}
            )
            self._record_finished(job_id)
            n += 1
        return n

    def _record_finished(self, job_id: str) -> None:
        """The job is finished now (its files written): its duration, from creation, goes to the metrics."""
        try:
            job = self.store.jobs.get_job(job_id)
        except NotFound:  # deleted meanwhile
            return
        if job.finished_at is not None:
            metrics.record_job_finished(job.handler, job.status, job.finished_at - job.created_at)


class _LeaseKeeper:
    """Extends a files lease while the files are written, at most every third of the lease."""

    def __init__(self, store: Store, job_id: str, lease_seconds: float) -> None:
        self.store, self.job_id, self.lease_seconds = store, job_id, lease_seconds
        self._last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.lease_seconds / 3:
            self._last = now
            self.store.upkeep.extend_files_lease(self.job_id, self.lease_seconds)
