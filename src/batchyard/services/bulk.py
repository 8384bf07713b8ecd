"""Bulk actions: one move (cancel, pause, resume, retry, delete) on many jobs, named by id or by the job list's
filter, with a dry run that counts what would change.

The jobs a move applies to are those whose status allows it (``core/lifecycle.sources``; for retry, those with
failed items too), so the dry run's ``affected`` is exactly how many the real run moves, unless jobs change in
between. A real run moves at most ``MAX_BULK_JOBS`` jobs per call, newest first, and says how many eligible ones
it left (``remaining``): calling again continues, since a moved job no longer qualifies for the same move. Each
job is moved on its own: one that fails (another owner's, gone, moved meanwhile) does not stop the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from batchyard.core.lifecycle import Action, can, sources
from batchyard.core.records import JobFilter, JobRecord
from batchyard.errors import BatchyardError, Forbidden, IllegalTransition, InvalidRequest, NotFound
from batchyard.services.auth import Principal
from batchyard.services.jobs import JobService
from batchyard.store import Store

MAX_BULK_JOBS = 10_000
BulkAction = Literal["cancel", "pause", "resume", "retry", "delete"]
Outcome = Literal["done", "skipped", "not_found", "forbidden", "failed"]
_ACTIONS: dict[str, Action] = {
    "cancel": Action.CANCEL,
    "pause": Action.PAUSE,
    "resume": Action.RESUME,
    "retry": Action.RETRY,
    "delete": Action.DELETE,
}


@dataclass(frozen=True, slots=True)
class BulkResult:
    id: str
    outcome: Outcome  # done; skipped: the job's status does not allow the move; not_found (or another owner's)
    status: str | None = None  # the job's status after the move ("deleted" once deleted)
    error: dict[str, object] | None = None


@dataclass(slots=True)
class BulkReport:
    action: BulkAction
    dry_run: bool
    matched: int  # jobs named (ids the caller may see) or matching the filter
    affected: int  # of those, the ones the move applies to (dry run) or was applied to (real run)
    results: list[BulkResult] = field(default_factory=list)  # real runs: one per job tried
    remaining: int = 0  # eligible jobs a real run left for a next call (over its limit)


class BulkService:
    def __init__(self, store: Store, jobs: JobService) -> None:
        self.store = store
        self.jobs = jobs

    def run(
        self,
        principal: Principal,
        action: BulkAction,
        *,
        ids: Sequence[str] | None = None,
        where: JobFilter | None = None,
        dry_run: bool = False,
        limit: int = MAX_BULK_JOBS,
    ) -> BulkReport:
        """Apply ``action`` to the jobs ``ids`` names, or to those matching ``where`` (exactly one of them)."""
        principal.require_write()
        if (ids is None) == (where is None):
            raise InvalidRequest("name the jobs by ids or by a filter, not both", param="ids")
        if ids is not None:
            return self._by_ids(principal, action, list(dict.fromkeys(ids)), dry_run)
        assert where is not None
        return self._by_filter(principal, action, self.jobs.scoped(where, principal), dry_run, limit)

    def _by_ids(self, principal: Principal, action: BulkAction, ids: list[str], dry_run: bool) -> BulkReport:
        if len(ids) > MAX_BULK_JOBS:
            raise InvalidRequest(f"at most {MAX_BULK_JOBS:,} ids per call", param="ids")
        if dry_run:
            visible = [j for j in self.store.stats.jobs_by_ids(ids) if principal.can_see(j.owner)]
            affected = sum(1 for j in visible if _eligible(j, action))
            return BulkReport(action, True, matched=len(visible), affected=affected)
        results = [self._apply(principal, action, job_id) for job_id in ids]
        done = sum(1 for r in results if r.outcome == "done")
        matched = sum(1 for r in results if r.outcome != "not_found")
        return BulkReport(action, False, matched=matched, affected=done, results=results)

    def _by_filter(
        self, principal: Principal, action: BulkAction, where: JobFilter, dry_run: bool, limit: int
    ) -> BulkReport:
        statuses = sorted(s.value for s in sources(_ACTIONS[action]))
        with_failed = action == "retry"
        matched = self.store.jobs.count_jobs(where)
        eligible = self.store.jobs.count_jobs(where, statuses=statuses, with_failed=with_failed)
        if dry_run:
            return BulkReport(action, True, matched=matched, affected=eligible)
        chosen = self.store.jobs.job_ids(
            where, statuses=statuses, with_failed=with_failed, limit=min(limit, MAX_BULK_JOBS)
        )
        results = [self._apply(principal, action, job_id) for job_id, _owner in chosen]
        done = sum(1 for r in results if r.outcome == "done")
        left = (
            self.store.jobs.count_jobs(where, statuses=statuses, with_failed=with_failed)
            if len(chosen) < eligible
            else 0
        )
        return BulkReport(action, False, matched=matched, affected=done, results=results, remaining=left)

    def _apply(self, principal: Principal, action: BulkAction, job_id: str) -> BulkResult:
        try:
            return BulkResult(job_id, "done", status=self._move(principal, action, job_id))
        except IllegalTransition as exc:
            return BulkResult(job_id, "skipped", status=exc.current, error=exc.to_dict())
        except NotFound as exc:
            return BulkResult(job_id, "not_found", error=exc.to_dict())
        except Forbidden as exc:
            return BulkResult(job_id, "forbidden", error=exc.to_dict())
        except BatchyardError as exc:  # anything else about this one job: reported, and the others go on
            return BulkResult(job_id, "failed", error=exc.to_dict())

    def _move(self, principal: Principal, action: BulkAction, job_id: str) -> str:
        """One job's move through the same rules as a single move (the job service); the new status."""
        jobs, actor = self.jobs, principal.owner
        if action == "retry":  # failed items only, as the selection counts them (a rerun is one job at a time)
            view, _ = jobs.retry(job_id, principal, include=["failed"])
            return view.job.status
        if action == "delete":
            jobs.delete(job_id, principal)
            return "deleted"
        jobs.job_record(job_id, principal, write=True)
        store = self.store.jobs
        if action == "cancel":
            return store.cancel_job(job_id, actor=actor).status
        if action == "pause":
            return store.pause_job(job_id, actor=actor).status
        return store.resume_job(job_id, actor=actor).status


def _eligible(job: JobRecord, action: BulkAction) -> bool:
    return can(job.status, _ACTIONS[action]) and (action != "retry" or job.failed > 0)
