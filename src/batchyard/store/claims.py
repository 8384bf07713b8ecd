"""The hot path: claim chunks of items, record outcomes (fenced), heartbeat leases, rescue expired ones."""

from __future__ import annotations

import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Float, Row, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from batchyard.core.errorsig import error_text_signature
from batchyard.core.lifecycle import (
    ATTEMPT_GIVEN_BACK_KINDS,
    CLAIMABLE_JOB_STATUSES,
    RECORDED_AS,
    REQUEUE_KINDS,
    STOPPING_JOB_STATUSES,
    Action,
    ItemStatus,
    JobStatus,
    StatusReason,
    after_crash,
    failure_threshold_crossed,
    sources,
)
from batchyard.core.quotas import QuotaLimits, tokens_of
from batchyard.core.records import ClaimBatch, ClaimedItem, ClaimedJob, CompletionReport, Outcome
from batchyard.store.engine import Database
from batchyard.store.moves import settle_job, stop_job
from batchyard.store.quotas import Allowance, after_claim, applicable, outside_scope, pause_scope
from batchyard.store.quotas import add_usage as add_quota_usage
from batchyard.store.quotas import allowance as quota_allowance
from batchyard.store.schema import item_requeue, items, job_usage, jobs, leases, workers
from batchyard.store.timeline import add_event

_fence = and_(
    items.c.job_id == bindparam("j"),
    items.c.seq == bindparam("s"),
    items.c.lease_token == bindparam("t"),
    items.c.status == ItemStatus.RUNNING,
)
_REQUEUE = (
    update(items)
    .where(_fence)
    .values(
        status=ItemStatus.QUEUED,
        error=bindparam("e"),
        available_at=bindparam("a"),
        lease_token=None,
        attempts=items.c.attempts - bindparam("back", type_=items.c.attempts.type),
        rescues=items.c.rescues + bindparam("r", type_=items.c.rescues.type),
    )
)
# The requeue row carries the item's rescue count: an item handed back by a crash stays a suspect when it is
# later released (pause, SIGTERM) or retried.
_REQUEUE_ROW = insert(item_requeue).from_select(
    ["job_id", "seq", "available_at", "rescues"],
    select(items.c.job_id, items.c.seq, bindparam("a", type_=Float), items.c.rescues).where(
        items.c.job_id == bindparam("j"), items.c.seq == bindparam("s")
    ),
)
DEFAULT_MAX_RESCUES = 6
_Spend = tuple[str, str | None, int, float]  # owner, project, tokens, cost: what a completion spent
# How many jobs one claim passes over because their owner's quota lets nothing start (each pass excludes that
# quota's whole scope, so this bounds the number of distinct held-back owners skipped, not jobs).
MAX_QUOTA_SKIPS = 8


def suspect_group_size(rescues: int, max_rescues: int = DEFAULT_MAX_RESCUES) -> int:
    """How many items handed back by crashes ``rescues`` times run together: halving at every crash, down to
    one at ``max_rescues - 1``, so a poisonous item ends up alone before it is set aside and its neighbours
    are cleared along the way."""
    return max(1, 1 << max(0, max_rescues - 1 - rescues))


class ClaimStore:
    """``store.claims``: the worker's hot path. Its statements are plain SQL run on the driver: they run for
    every chunk, and SQLAlchemy's per-row parameter processing would cost more than the database work."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def _placeholder(self) -> str:
        return "%s" if self.db.is_postgres else "?"

    def _raw(self, sql: str) -> str:
        return sql.replace("?", self._placeholder)

    @cached_property
    def _sql_claim_range(self) -> str:
        return self._raw(
            "UPDATE items SET status = 'running', attempts = attempts + 1, lease_token = ?, "
            "started_at = ?, available_at = NULL "
            "WHERE job_id = ? AND seq >= ? AND seq < ? AND status = 'queued' "
            "RETURNING seq, key, payload, attempts"
        )

    @cached_property
    def _sql_fence(self) -> str:
        lock = " FOR UPDATE" if self.db.is_postgres else ""
        return self._raw(
            "SELECT seq FROM items WHERE job_id = ? AND seq >= ? AND seq <= ? "
            "AND lease_token = ? AND status = 'running'" + lock
        )

    @cached_property
    def _sql_finish_unnest(self) -> str:
        return (
            "UPDATE items AS i SET status = u.status, result = u.result, error = u.error, usage = u.usage, "
            "finished_at = u.finished_at, error_signature = u.sig, lease_token = NULL "
            "FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
            "%b::float8[], %b::text[]) AS u(seq, token, status, result, error, usage, finished_at, sig) "
            "WHERE i.job_id = %s AND i.seq = u.seq AND i.lease_token = u.token AND i.status = 'running' "
            "RETURNING i.seq"
        )

    @cached_property
    def _sql_finish(self) -> str:
        return self._raw(
            "UPDATE items SET status = ?, result = ?, error = ?, usage = ?, finished_at = ?, error_signature = ?, "
            "lease_token = NULL WHERE job_id = ? AND seq = ? AND lease_token = ? AND status = 'running'"
        )

    # -- claims ---------------------------------------------------------------------------------------------

    def claim_items(
        self,
        worker_id: str,
        capacity: Mapping[str, int],
        lease_seconds: float,
        *,
        suspects: bool = True,
        max_rescues: int = DEFAULT_MAX_RESCUES,
        job_ids: Sequence[str] | None = None,
    ) -> ClaimBatch | None:
        """Claim up to ``capacity[handler]`` items of one job, leased to ``worker_id``.

        The job is the highest-priority claimable one, least recently claimed first (round-robin across jobs).
        Items due for another attempt come first, then fresh ones by range from the job's claim cursor.
        *Suspects* (items that were in flight when a worker died) are claimed apart, in a lease of their own
        holding only suspects of one level (see :func:`suspect_group_size`), and only when ``suspects`` is
        true: a worker holds one such lease at a time. ``job_ids`` limits the pick to those jobs (None: any).
        """
        handlers = [name for name, free in capacity.items() if free > 0]
        if not handlers:
            return None
        with self.db.write(relaxed=True) as conn:
            now = self.db.now(conn)
            held_back: list[QuotaLimits] = []  # quota scopes that may start nothing now (their jobs are skipped)
            for _ in range(MAX_QUOTA_SKIPS + 1):
                job = self._pick_job(conn, handlers, now, job_ids, held_back, skip_locked=True)
                # Waiting for a locked job is only safe while this transaction holds no quota row (a claim that
                # holds a job waits for its quota: the other order would deadlock).
                if job is None and self.db.is_postgres and not held_back:
                    job = self._pick_job(conn, handlers, now, job_ids, held_back, skip_locked=False)
                if job is None:
                    return None
                limit = capacity[job.handler]
                allowed = quota_allowance(conn, job.owner, job.project, now)
                if allowed is not None:
                    if allowed.spent is not None:
                        pause_scope(conn, *allowed.spent, now)
                    if allowed.spent is not None or allowed.full is not None:
                        limits = allowed.spent[0] if allowed.spent is not None else allowed.full
                        assert limits is not None
                        held_back.append(limits)
                        continue
                    if allowed.limit is not None:
                        limit = min(limit, allowed.limit)
                return self._claim_from_job(
                    conn,
                    job,
                    worker_id,
                    limit,
                    lease_seconds,
                    now,
                    suspects=suspects,
                    max_rescues=max_rescues,
                    quota=allowed,
                )
            return None

    def _pick_job(
        self,
        conn: Connection,
        handlers: list[str],
        now: float,
        job_ids: Sequence[str] | None,
        held_back: Sequence[QuotaLimits],
        *,
        skip_locked: bool,
    ) -> Row[*tuple[Any, ...]] | None:
        query = (
            select(
                jobs.c.id,
                jobs.c.handler,
                jobs.c.owner,
                jobs.c.project,
                jobs.c.status,
                jobs.c.params,
                jobs.c.claim_cursor,
                jobs.c.total,
                jobs.c.retry_due_at,
                jobs.c.concurrency,
                jobs.c.running,
                jobs.c.max_attempts,
                jobs.c.backoff_base_seconds,
                jobs.c.backoff_max_seconds,
                jobs.c.timeout_seconds,
            )
            .where(
                jobs.c.status.in_(CLAIMABLE_JOB_STATUSES),
                jobs.c.handler.in_(handlers),
                or_(jobs.c.scheduled_at.is_(None), jobs.c.scheduled_at <= now),
                or_(jobs.c.claim_cursor < jobs.c.total, jobs.c.retry_due_at <= now),
                or_(jobs.c.concurrency.is_(None), jobs.c.running < jobs.c.concurrency),
                *([] if job_ids is None else [jobs.c.id.in_(list(job_ids))]),
                *[outside_scope(limits) for limits in held_back],
            )
            .order_by(jobs.c.priority.desc(), jobs.c.last_claimed_at, jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=skip_locked)
        )
        return conn.execute(query).first()

    def _claim_from_job(
        self,
        conn: Connection,
        job: Row[*tuple[Any, ...]],
        worker_id: str,
        limit: int,
        lease_seconds: float,
        now: float,
        *,
        suspects: bool,
        max_rescues: int,
        quota: Allowance | None = None,
    ) -> ClaimBatch:
        if job.concurrency is not None:
            limit = min(limit, job.concurrency - job.running)
        requeued: list[int] = []
        suspect = False
        due_at = job.retry_due_at
        if due_at is not None and due_at <= now:
            due = and_(item_requeue.c.job_id == job.id, item_requeue.c.available_at <= now)
            level = (
                conn.execute(select(func.max(item_requeue.c.rescues)).where(due, item_requeue.c.rescues > 0)).scalar()
                if suspects
                else None
            )
            if level:
                suspect = True
                limit = min(limit, suspect_group_size(level, max_rescues))
                chosen = item_requeue.c.rescues == level
            else:
                chosen = item_requeue.c.rescues == 0
            requeued = list(
                conn.execute(
                    select(item_requeue.c.seq)
                    .where(due, chosen)
                    .order_by(item_requeue.c.available_at, item_requeue.c.seq)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            if requeued:
                conn.execute(
                    delete(item_requeue).where(item_requeue.c.job_id == job.id, item_requeue.c.seq.in_(requeued))
                )
            due_at = conn.execute(
                select(func.min(item_requeue.c.available_at)).where(item_requeue.c.job_id == job.id)
            ).scalar()
        lo = job.claim_cursor
        hi = lo if suspect else min(job.total, lo + max(0, limit - len(requeued)))
        token = secrets.token_hex(8)
        rows: list[Any] = []
        if hi > lo:
            rows = self.db.driver(conn).execute(self._sql_claim_range, (token, now, job.id, lo, hi)).fetchall()
        # Items starting for the first time count against an item budget; a retry does not count again.
        first_starts = len(rows)
        if requeued and quota is not None:
            first_starts += self._never_started(conn, job.id, requeued)
        if requeued:
            rows += conn.execute(
                update(items)
                .where(items.c.job_id == job.id, items.c.status == ItemStatus.QUEUED, items.c.seq.in_(requeued))
                .values(
                    status=ItemStatus.RUNNING,
                    attempts=items.c.attempts + 1,
                    lease_token=token,
                    started_at=now,
                    available_at=None,
                )
                .returning(items.c.seq, items.c.key, items.c.payload, items.c.attempts)
            ).all()
        claimed = [ClaimedItem(seq, key, payload, attempts) for seq, key, payload, attempts in rows]
        count = len(claimed)
        values: dict[str, Any] = {
            "claim_cursor": hi,
            "retry_due_at": due_at,
            "last_claimed_at": now,
            "queued": jobs.c.queued - count,
            "running": jobs.c.running + count,
        }
        if count:
            values["last_activity_at"] = now
        if count and job.status == JobStatus.QUEUED:
            values.update(status=JobStatus.RUNNING, started_at=func.coalesce(jobs.c.started_at, now))
            add_event(conn, job.id, now, "started", actor=worker_id, message="first items claimed")
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(**values))
        if quota is not None and first_starts:
            add_quota_usage(conn, self.db.is_postgres, job.owner, job.project, now, items=first_starts)
            after_claim(conn, quota, first_starts, now)
        if count:
            conn.execute(
                insert(leases).values(
                    token=token,
                    worker_id=worker_id,
                    job_id=job.id,
                    seqs=json.dumps([c.seq for c in claimed]),
                    expires_at=now + lease_seconds,
                )
            )
        claimed_job = ClaimedJob(
            id=job.id,
            handler=job.handler,
            params=json.loads(job.params) if job.params else {},
            max_attempts=job.max_attempts,
            backoff_base_seconds=job.backoff_base_seconds,
            backoff_max_seconds=job.backoff_max_seconds,
            timeout_seconds=job.timeout_seconds,
        )
        return ClaimBatch(claimed_job, token, claimed, suspect=suspect and bool(claimed))

    def _never_started(self, conn: Connection, job_id: str, seqs: list[int]) -> int:
        """How many of these queued items never started (cancelled unstarted, then queued again by a rerun)."""
        n = conn.execute(
            select(func.count()).where(
                items.c.job_id == job_id,
                items.c.seq.in_(seqs),
                items.c.status == ItemStatus.QUEUED,
                items.c.started_at.is_(None),
            )
        ).scalar()
        return int(n or 0)

    # -- completions ----------------------------------------------------------------------------------------

    def complete_items(self, outcomes: Sequence[Outcome], finished_tokens: Sequence[str] = ()) -> CompletionReport:
        """Record outcomes in one transaction; returns how many were accepted.

        Fenced: an outcome counts only if its item is still ``running`` under the same lease token, so a worker
        whose lease expired (and whose items went to someone else) changes nothing. Counters, usage and the job's
        own move to ``finalizing``/``cancelled`` happen in the same transaction.
        """
        report = CompletionReport()
        by_job: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in outcomes:
            by_job[outcome.job_id].append(outcome)
        with self.db.write() as conn:
            now = self.db.now(conn)
            spends: list[_Spend] = []
            for job_id, group in by_job.items():
                accepted, settled = self._complete_job_items(conn, job_id, group, now, spends)
                report.accepted += accepted
                if settled:
                    report.settled.append(job_id)
            if finished_tokens:
                conn.execute(delete(leases).where(leases.c.token.in_(list(finished_tokens))))
            self._add_spends(conn, spends, now)
        return report

    def _add_spends(self, conn: Connection, spends: list[_Spend], now: float) -> None:
        """Tokens and cost against their owners' quotas: last in the transaction, after every job row it
        changes, so it never holds a usage row while waiting for a job (claims take a job, then the usage)."""
        for owner, project, tokens, cost in spends:
            if applicable(conn, owner, project):
                add_quota_usage(conn, self.db.is_postgres, owner, project, now, tokens=tokens, cost=cost)

    def _complete_job_items(
        self, conn: Connection, job_id: str, group: list[Outcome], now: float, spends: list[_Spend]
    ) -> tuple[int, bool]:
        """Apply one job's outcomes; returns (accepted, whether the job moved to finalizing/cancelled). The
        tokens and cost they spent go to ``spends``, for the caller to count against quotas at its end."""
        job = conn.execute(
            select(jobs.c.status, jobs.c.owner, jobs.c.project, jobs.c.max_failures, jobs.c.max_failure_rate).where(
                jobs.c.id == job_id
            )
        ).first()
        if job is None:  # deleted meanwhile: nothing to record
            return 0, False
        finishing, returning = _sort_outcomes(group, stopping=job.status in STOPPING_JOB_STATUSES)
        finished = self._finish_fenced(conn, job_id, finishing, now)
        requeued = self._requeue_fenced(conn, job_id, returning, now)
        accepted = [o for _, o in finished] + requeued
        if not accepted:
            return 0, False
        values: dict[str, Any] = {"running": jobs.c.running - len(accepted), "last_activity_at": now}
        counts = Counter(kind for kind, _ in finished)
        for name, n in counts.items():
            values[name] = getattr(jobs.c, name) + n
        if requeued:
            values["queued"] = jobs.c.queued + len(requeued)
            due = now + min(o.retry_delay for o in requeued)
            values["retry_due_at"] = (
                func.least(func.coalesce(jobs.c.retry_due_at, due), due)
                if self.db.is_postgres
                else func.coalesce(func.min(jobs.c.retry_due_at, due), due)
            )
        busy = sum(o.duration for kind, o in finished if kind != "skipped")  # handler time of processed items
        if busy:
            values["busy_seconds"] = jobs.c.busy_seconds + busy
        cost, usage = _usage_totals(accepted)
        if cost:
            values["cost"] = jobs.c.cost + cost
        if usage:
            values["usage"] = self._merged_usage(conn, job_id, usage)
            self._add_usage_rows(conn, job_id, usage)
        tokens = tokens_of(usage) if usage else 0
        if cost or tokens:
            spends.append((job.owner, job.project, tokens, cost))
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        if counts.get("failed") and (job.max_failures is not None or job.max_failure_rate is not None):
            self._apply_failure_threshold(conn, job_id, now)
        if requeued and any(o.kind == "pause" for o in requeued):
            self._pause_for_handler(conn, job_id, next(o for o in requeued if o.kind == "pause"), now)
        return len(accepted), settle_job(conn, job_id, now)

    def _pause_for_handler(self, conn: Connection, job_id: str, outcome: Outcome, now: float) -> None:
        """A handler (or its admit hook) raised PauseJob: pause the job with its message, in the transaction that
        puts the item back. A job paused already (by a person, or another item) or stopping is left as it is."""
        message = json.loads(outcome.error).get("message") if outcome.error else None
        handler = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(sources(Action.PAUSE)))
            .values(
                status=JobStatus.PAUSED,
                status_reason=StatusReason.PAUSED_BY_HANDLER,
                status_message=message,
                last_activity_at=now,
            )
            .returning(jobs.c.handler)
        ).scalar()
        if handler is not None:
            add_event(
                conn,
                job_id,
                now,
                "paused",
                actor=handler,
                message=message,
                data={"reason": StatusReason.PAUSED_BY_HANDLER.value, "message": message, "seq": outcome.seq},
            )

    def _apply_failure_threshold(self, conn: Connection, job_id: str, now: float) -> None:
        """Checked with the failures that cross it, so even a fast job cannot finish past its threshold."""
        row = conn.execute(
            select(jobs.c.failed, jobs.c.succeeded, jobs.c.max_failures, jobs.c.max_failure_rate).where(
                jobs.c.id == job_id
            )
        ).one()
        reason = failure_threshold_crossed(row.failed, row.succeeded, row.max_failures, row.max_failure_rate)
        if reason is not None:
            stop_job(
                conn, job_id, Action.FAIL, {"code": "failure_threshold", "message": reason}, now, actor="threshold"
            )

    def _finish_fenced(
        self, conn: Connection, job_id: str, finishing: list[tuple[str, Outcome]], now: float
    ) -> list[tuple[str, Outcome]]:
        """Write final outcomes; only items still running under the outcome's lease token change."""
        if not finishing:
            return []
        if not self.db.is_postgres:
            valid = self._fenced(conn, job_id, [o for _, o in finishing])
            accepted = [(kind, o) for kind, o in finishing if (o.lease_token, o.seq) in valid]
            if not accepted:
                return []
            self.db.driver(conn).cursor().executemany(
                self._sql_finish,
                [
                    (
                        kind,
                        o.result,
                        o.error,
                        json.dumps(o.usage) if o.usage else None,
                        o.finished_at or now,
                        _signature(kind, o),
                        job_id,
                        o.seq,
                        o.lease_token,
                    )
                    for kind, o in accepted
                ],
            )
            return accepted
        # PostgreSQL: one UPDATE ... FROM unnest(...) per flush is both the fence and the write; RETURNING
        # tells which rows were still ours. %b sends the arrays in binary: text-format array dumping would cost
        # more than the UPDATE itself.
        with self.db.driver(conn).cursor() as cur:
            rows = cur.execute(
                self._sql_finish_unnest,
                (
                    [o.seq for _, o in finishing],
                    [o.lease_token for _, o in finishing],
                    [k for k, _ in finishing],
                    [o.result for _, o in finishing],
                    [o.error for _, o in finishing],
                    [json.dumps(o.usage) if o.usage else None for _, o in finishing],
                    [o.finished_at or now for _, o in finishing],
                    [_signature(kind, o) for kind, o in finishing],
                    job_id,
                ),
            ).fetchall()
        valid_seqs = {row[0] for row in rows}
        return [(kind, o) for kind, o in finishing if o.seq in valid_seqs]

    def _requeue_fenced(self, conn: Connection, job_id: str, returning: list[Outcome], now: float) -> list[Outcome]:
        """Put retried and released items back in the queue (released ones do not count the attempt)."""
        if not returning:
            return []
        valid = self._fenced(conn, job_id, returning)
        accepted = [o for o in returning if (o.lease_token, o.seq) in valid]
        if accepted:
            conn.execute(
                _REQUEUE,
                [
                    {
                        "j": job_id,
                        "s": o.seq,
                        "t": o.lease_token,
                        "e": None if o.kind == "pause" else o.error,  # the pause's message goes to the job
                        "a": now + o.retry_delay,
                        "back": 1 if o.kind in ATTEMPT_GIVEN_BACK_KINDS else 0,
                        "r": 1 if o.kind == "rescue" else 0,
                    }
                    for o in accepted
                ],
            )
            conn.execute(_REQUEUE_ROW, [{"j": job_id, "s": o.seq, "a": now + o.retry_delay} for o in accepted])
        return accepted

    def _fenced(self, conn: Connection, job_id: str, group: list[Outcome]) -> set[tuple[str, int]]:
        """(token, seq) of the outcomes whose item is still running under that token (and locks them)."""
        by_token: dict[str, list[int]] = defaultdict(list)
        for o in group:
            by_token[o.lease_token].append(o.seq)
        valid: set[tuple[str, int]] = set()
        for token, seqs in by_token.items():
            # A range scan on the primary key: a chunk's items are (mostly) contiguous.
            rows = self.db.driver(conn).execute(self._sql_fence, (job_id, min(seqs), max(seqs), token)).fetchall()
            valid.update((token, row[0]) for row in rows)
        return valid

    def _merged_usage(self, conn: Connection, job_id: str, add: dict[str, float]) -> str:
        current = conn.execute(select(jobs.c.usage).where(jobs.c.id == job_id)).scalar_one_or_none()
        merged: dict[str, float] = json.loads(current) if current else {}
        for name, amount in add.items():
            merged[name] = merged.get(name, 0) + amount
        return json.dumps(merged, sort_keys=True)

    def _add_usage_rows(self, conn: Connection, job_id: str, add: dict[str, float]) -> None:
        if self.db.is_postgres:  # imported here: a SQLite process never loads the PostgreSQL dialect
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt: Any = postgresql_insert(job_usage)
        else:
            stmt = sqlite_insert(job_usage)
        stmt = stmt.on_conflict_do_update(
            index_elements=[job_usage.c.job_id, job_usage.c.name],
            set_={"amount": job_usage.c.amount + stmt.excluded.amount},
        )
        conn.execute(stmt, [{"job_id": job_id, "name": name[:100], "amount": amount} for name, amount in add.items()])

    def job_statuses(self, job_ids: Sequence[str]) -> dict[str, str]:
        with self.db.read() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(list(job_ids)))).all()
        return {job_id: status for job_id, status in rows}

    # -- leases -----------------------------------------------------------------------------------------------

    def heartbeat(self, worker_id: str, in_flight: int, lease_seconds: float) -> None:
        """Extend this worker's leases and its registry row."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(update(leases).where(leases.c.worker_id == worker_id).values(expires_at=now + lease_seconds))
            conn.execute(update(workers).where(workers.c.id == worker_id).values(last_seen_at=now, in_flight=in_flight))

    def rescue_expired_leases(self, limit: int = 100, max_rescues: int = DEFAULT_MAX_RESCUES) -> int:
        """Return items of leases past their expiry (a dead or stalled worker) to the queue.

        A rescue is not a failed attempt: the item did nothing wrong that anyone saw, it was merely in flight
        when its worker died (a deploy, an OOM kill, a preemption) -- or it is what killed the worker. So the
        attempt is given back and the item's ``rescues`` count goes up instead; it comes back as a *suspect*,
        claimed with fewer and fewer others (halving, see :func:`suspect_group_size`). An item in flight in
        ``max_rescues`` crashes -- the last one alone among suspects -- is set aside as failed with the code
        ``poison``. Safe to run in every process: the lease row is deleted conditionally, so exactly one
        process rescues each lease.
        """
        with self.db.read() as conn:
            now = self.db.now(conn)
            expired = (
                conn.execute(
                    select(leases.c.token).where(leases.c.expires_at < now).order_by(leases.c.expires_at).limit(limit)
                )
                .scalars()
                .all()
            )
        return sum(self._rescue_lease(token, max_rescues) for token in expired)

    def expire_leases_of(self, worker_id: str) -> int:
        """Hand a crashed worker's leases over at once (the next rescue takes them); returns how many."""
        with self.db.write() as conn:
            return int(
                conn.execute(update(leases).where(leases.c.worker_id == worker_id).values(expires_at=0.0)).rowcount
            )

    def _rescue_lease(self, token: str, max_rescues: int) -> int:
        with self.db.write() as conn:
            now = self.db.now(conn)
            lease = conn.execute(
                delete(leases)
                .where(leases.c.token == token, leases.c.expires_at < now)
                .returning(leases.c.job_id, leases.c.worker_id, leases.c.seqs)
            ).first()
            if lease is None:
                return 0
            rows = conn.execute(
                select(items.c.seq, items.c.attempts, items.c.rescues).where(
                    items.c.job_id == lease.job_id,
                    items.c.seq.in_(json.loads(lease.seqs)),
                    items.c.lease_token == token,
                    items.c.status == ItemStatus.RUNNING,
                )
            ).all()
            if not rows:
                return 0
            error = {
                "type": "LeaseExpired",
                "code": "lease_expired",
                "message": f"worker {lease.worker_id} stopped renewing its lease (crashed or stalled)",
            }
            outcomes = []
            poisoned = 0
            for seq, attempts, rescues in rows:
                if after_crash(rescues=rescues, max_rescues=max_rescues) == "failed":
                    poisoned += 1
                    err = json.dumps(
                        {
                            "type": "Poison",
                            "code": "poison",
                            "attempt": attempts,
                            "retryable": False,
                            "message": f"set aside: its worker died {rescues + 1} times while running it, the last "
                            "time with no other suspect item; look for what makes the process exit "
                            "(a crash in native code, os._exit, running out of memory)",
                        }
                    )
                    outcomes.append(Outcome(lease.job_id, seq, token, "failed", error=err, finished_at=now))
                else:
                    err = json.dumps({**error, "attempt": attempts, "rescues": rescues + 1})
                    outcomes.append(Outcome(lease.job_id, seq, token, "rescue", error=err, finished_at=now))
            spends: list[_Spend] = []
            accepted, _ = self._complete_job_items(conn, lease.job_id, outcomes, now, spends)
            self._add_spends(conn, spends, now)
            message = f"{accepted} item(s) of an expired lease returned to the queue"
            if poisoned:
                message += f"; {poisoned} set aside as poison"
            add_event(
                conn,
                lease.job_id,
                now,
                "rescued",
                actor=lease.worker_id,
                message=message,
                data={"items": accepted, "worker_id": lease.worker_id, "poison": poisoned},
            )
            return accepted


def _sort_outcomes(group: list[Outcome], *, stopping: bool) -> tuple[list[tuple[str, Outcome]], list[Outcome]]:
    """Split outcomes into final ones (with the status to record) and ones that go back to the queue, as
    :func:`~batchyard.core.lifecycle.recorded_as` says."""
    record_as = RECORDED_AS[stopping]
    finishing: list[tuple[str, Outcome]] = []
    returning: list[Outcome] = []
    for outcome in group:
        kind = record_as[outcome.kind]
        if kind not in REQUEUE_KINDS:
            finishing.append((kind, outcome))
        elif kind == outcome.kind:
            returning.append(outcome)
        else:
            returning.append(replace(outcome, kind=kind))
    return finishing, returning


def _signature(kind: str, outcome: Outcome) -> str | None:
    """A failed item's error signature (its error group), written with its failure; None for any other end."""
    return error_text_signature(outcome.error) if kind == ItemStatus.FAILED else None


def _usage_totals(outcomes: list[Outcome]) -> tuple[float, dict[str, float]]:
    usage: dict[str, float] = {}
    for o in outcomes:
        for name, amount in (o.usage or {}).items():
            usage[name] = usage.get(name, 0) + amount
    return sum(o.cost for o in outcomes), usage
