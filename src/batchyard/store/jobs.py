"""Jobs: creation with streamed items, lifecycle moves, and the queries that read them."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from batchyard.core.cursors import JOB_SORT_KEYS
from batchyard.core.jobfilter import id_prefix_range
from batchyard.core.lifecycle import (
    RERUN_JOB_STATUSES,
    Action,
    ItemStatus,
    JobStatus,
    StatusReason,
    next_job_status,
    retry_includes,
)
from batchyard.core.records import EventRecord, JobFilter, JobQuery, JobRecord, JobSpec, decode_json
from batchyard.errors import DuplicateIdempotencyKey, NotFound
from batchyard.store.engine import Database
from batchyard.store.moves import move_job, settle_job, stop_job, stop_queued_items
from batchyard.store.schema import (
    idempotency_keys,
    item_progress,
    item_requeue,
    items,
    job_events,
    job_usage,
    jobs,
    leases,
    progress_samples,
)
from batchyard.store.timeline import add_event
from batchyard.store.wakeups import Wakeups


class NewItem(Protocol):
    """One checked item to insert (``batchyard.data.ingest.ParsedItem`` is one)."""

    @property
    def seq(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def payload(self) -> str: ...  # JSON text


class ItemSource(Protocol):
    """Checked items in input order, in chunks (``batchyard.data.ingest.ItemReader`` is one): the store reads
    what it inserts without knowing how items are parsed."""

    def chunks(self, size: int) -> Iterator[Sequence[NewItem]]: ...


INSERT_CHUNK = 5000
# An empty job may be filled while queued, or paused (someone paused it before its items came: it stays paused).
_FILLABLE = (JobStatus.QUEUED, JobStatus.PAUSED)
_STOPPABLE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)


def new_job_id() -> str:
    """``job_`` + 12 hex digits of milliseconds + 8 random: unique, unguessable enough, and sorts by creation."""
    return f"job_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


class JobStore:
    """``store.jobs``: jobs and their timeline."""

    def __init__(self, db: Database, wakeups: Wakeups) -> None:
        self.db = db
        self.wakeups = wakeups

    # -- creation -------------------------------------------------------------------------------------------

    def create_job(
        self, spec: JobSpec, reader: ItemSource, *, actor: str | None = None, idempotency: tuple[str, str] | None = None
    ) -> JobRecord:
        """Create a job and insert its items, all in one transaction: bad input leaves nothing behind.

        Items are streamed from ``reader`` in chunks; when the reader finds a problem it raises
        :class:`~batchyard.errors.InputInvalid` at the end of the input and the transaction rolls back.
        """
        job_id = new_job_id()
        with self.db.write() as conn:
            now = self.db.now(conn)
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    handler=spec.handler,
                    owner=spec.owner,
                    project=spec.project,
                    status=JobStatus.QUEUED,
                    priority=spec.priority,
                    params=_dumps(spec.params),
                    description=spec.description,
                    tags=json.dumps(list(spec.tags)),
                    meta=_dumps(spec.metadata),
                    source=spec.source,
                    created_at=now,
                    last_activity_at=now,
                    scheduled_at=spec.scheduled_at,
                    expires_at=spec.expires_at,
                    max_attempts=spec.max_attempts,
                    backoff_base_seconds=spec.backoff_base_seconds,
                    backoff_max_seconds=spec.backoff_max_seconds,
                    timeout_seconds=spec.timeout_seconds,
                    concurrency=spec.concurrency,
                    max_failures=spec.max_failures,
                    max_failure_rate=spec.max_failure_rate,
                    webhook_url=spec.webhook_url,
                    notify_emails=json.dumps(list(spec.notify_emails)) if spec.notify_emails else None,
                )
            )
            if idempotency is not None:  # (key, request hash): a concurrent duplicate fails on the primary key
                try:
                    conn.execute(
                        insert(idempotency_keys).values(
                            owner=spec.owner,
                            key=idempotency[0],
                            request_hash=idempotency[1],
                            job_id=job_id,
                            created_at=now,
                        )
                    )
                except IntegrityError as exc:
                    raise DuplicateIdempotencyKey(
                        f"Idempotency-Key {idempotency[0]!r} is being used by another request", param="Idempotency-Key"
                    ) from exc
            total = self._insert_items(conn, job_id, reader)
            # last_activity_at again at the end: the live feed orders changes by it, and a big input can take
            # a while between the transaction's start and its commit.
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(total=total, queued=total, last_activity_at=self.db.now(conn))
            )
            add_event(
                conn,
                job_id,
                now,
                "created",
                actor=actor or spec.owner,
                message=f"{total} item(s) from {spec.source or 'Python'}",
                data={"total": total},
            )
            self.wakeups.wake_workers(conn)
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
        self.wakeups.after_commit_wake()
        return JobRecord.from_row(row)

    def _insert_items(self, conn: Connection, job_id: str, reader: ItemSource) -> int:
        total = 0
        if self.db.is_postgres:
            raw = self.db.driver(conn)  # psycopg's own connection, for COPY
            copy_sql = "COPY items (job_id, seq, key, payload, status, attempts) FROM STDIN"
            with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                for chunk in reader.chunks(INSERT_CHUNK):
                    for it in chunk:
                        copy.write_row((job_id, it.seq, it.key, it.payload, "queued", 0))
                    total += len(chunk)
            return total
        sql = "INSERT INTO items (job_id, seq, key, payload, status, attempts) VALUES (?, ?, ?, ?, 'queued', 0)"
        for chunk in reader.chunks(INSERT_CHUNK):
            self.db.driver(conn).executemany(sql, [(job_id, it.seq, it.key, it.payload) for it in chunk])
            total += len(chunk)
        return total

    # -- filling a job created empty (an OpenAI batch: created at once, its input file checked after) --------

    def jobs_awaiting_items(self, handler: str, limit: int = 10) -> list[str]:
        """Queued (or paused) jobs of ``handler`` with no items yet whose filling nobody holds (or whose holder's
        lease ran out), oldest first."""
        with self.db.read() as conn:
            now = self.db.now(conn)
            return list(
                conn.execute(
                    select(jobs.c.id).where(*_awaiting_items(handler, now)).order_by(jobs.c.created_at).limit(limit)
                ).scalars()
            )

    def claim_filling(self, job_id: str, handler: str, lease_seconds: float) -> bool:
        """Take the right to fill an empty queued job for ``lease_seconds`` (``files_lease_until`` serves as the
        lease: a queued job has no result files to write). False if it is filled, stopped or held by another."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            return bool(
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, *_awaiting_items(handler, now))
                    .values(files_lease_until=now + lease_seconds)
                ).rowcount
            )

    def fill_job(
        self, job_id: str, reader: ItemSource, *, params: dict[str, Any], actor: str | None = None
    ) -> JobRecord | None:
        """Insert the items of an empty queued (or paused) job and set its params, in one transaction (a reader that
        raises leaves nothing). None if the job is no longer empty and queued or paused (cancelled, or filled)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            row = conn.execute(select(jobs.c.status, jobs.c.total).where(jobs.c.id == job_id).with_for_update()).first()
            if row is None or row.status not in _FILLABLE or row.total:
                return None
            total = self._insert_items(conn, job_id, reader)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    total=total,
                    queued=total,
                    params=_dumps(params),
                    files_lease_until=None,
                    last_activity_at=self.db.now(conn),
                )
            )
            add_event(
                conn,
                job_id,
                now,
                "validated",
                actor=actor,
                message=f"{total} request(s) checked and queued",
                data={"total": total},
            )
            self.wakeups.wake_workers(conn)
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
        self.wakeups.after_commit_wake()
        return JobRecord.from_row(row)

    def merge_params(self, job_id: str, values: dict[str, Any]) -> None:
        """Set these keys of a job's params (the others stay)."""
        with self.db.write() as conn:
            current = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id).with_for_update()).scalar()
            params = {**(decode_json(current) if current else {}), **values}
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(params=_dumps(params)))

    def fail_unfilled(self, job_id: str, error: dict[str, Any], *, actor: str | None = None) -> bool:
        """Fail an empty queued job whose items could not be read (its input was invalid)."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            stopped = stop_job(conn, job_id, Action.FAIL, error, now, actor=actor)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(files_lease_until=None))
            return stopped

    def event_times(self, job_ids: Sequence[str], types: Sequence[str]) -> dict[str, dict[str, float]]:
        """When each of these jobs first had each of these events: {job id: {event type: time}}, one query."""
        out: dict[str, dict[str, float]] = {job_id: {} for job_id in job_ids}
        if not job_ids:
            return out
        with self.db.read() as conn:
            rows = conn.execute(
                select(job_events.c.job_id, job_events.c.type, func.min(job_events.c.at))
                .where(job_events.c.job_id.in_(list(job_ids)), job_events.c.type.in_(list(types)))
                .group_by(job_events.c.job_id, job_events.c.type)
            ).all()
        for job_id, kind, at in rows:
            out[job_id][kind] = at
        return out

    # -- reading --------------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobRecord:
        with self.db.read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}", param="job_id")
        return JobRecord.from_row(row)

    def list_jobs(self, query: JobQuery | None = None, **filters: Any) -> list[JobRecord]:
        """One page of jobs, newest first unless ``query.sort`` says otherwise (keyset pagination: a page costs
        O(page) whatever the offset). ``filters`` are JobQuery fields, for short calls."""
        q = query or JobQuery(**filters)
        column, descending = jobs.c[JOB_SORT_KEYS[q.sort.lstrip("-")].field], q.sort.startswith("-")
        stmt = select(jobs).where(*job_conditions(q.filter))
        if q.after is not None:  # keyset: rows strictly after (value, id) in the sort order
            value, last_id = q.after
            if descending:
                stmt = stmt.where(or_(column < value, and_(column == value, jobs.c.id < last_id)))
            else:
                stmt = stmt.where(or_(column > value, and_(column == value, jobs.c.id > last_id)))
        order = (column.desc(), jobs.c.id.desc()) if descending else (column.asc(), jobs.c.id.asc())
        stmt = stmt.order_by(*order).limit(q.limit)
        with self.db.read() as conn:
            return [JobRecord.from_row(r) for r in conn.execute(stmt)]

    def count_jobs(self, where: JobFilter, *, statuses: Sequence[str] | None = None, with_failed: bool = False) -> int:
        """How many jobs match ``where`` (and, if given, are in one of ``statuses``; with ``with_failed``, have
        failed items): a bulk action's dry run. O(matching jobs) over the jobs table, never items."""
        stmt = select(func.count()).select_from(jobs).where(*job_conditions(where), *_eligible(statuses, with_failed))
        with self.db.read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def job_ids(
        self, where: JobFilter, *, limit: int, statuses: Sequence[str] | None = None, with_failed: bool = False
    ) -> list[tuple[str, str]]:
        """(id, owner) of up to ``limit`` jobs matching like :meth:`count_jobs`, newest first."""
        stmt = (
            select(jobs.c.id, jobs.c.owner)
            .where(*job_conditions(where), *_eligible(statuses, with_failed))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [(job_id, owner) for job_id, owner in conn.execute(stmt)]

    def samples_for(self, job_ids: Sequence[str], since: float) -> dict[str, list[tuple[float, int, int, float]]]:
        """Recent progress samples (at, processed, failed, partial) of many jobs in one query (a page of jobs)."""
        out: dict[str, list[tuple[float, int, int, float]]] = {job_id: [] for job_id in job_ids}
        if not job_ids:
            return out
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    progress_samples.c.job_id,
                    progress_samples.c.at,
                    progress_samples.c.done,
                    progress_samples.c.failed,
                    progress_samples.c.partial,
                )
                .where(progress_samples.c.job_id.in_(list(job_ids)), progress_samples.c.at >= since)
                .order_by(progress_samples.c.at)
            ).all()
        for job_id, at, done, failed, partial in rows:
            out[job_id].append((at, done, failed, partial))
        return out

    def find_idempotent_job(self, owner: str, key: str) -> tuple[str, str] | None:
        """(request hash, job id) recorded for this owner's Idempotency-Key, if any."""
        with self.db.read() as conn:
            row = conn.execute(
                select(idempotency_keys.c.request_hash, idempotency_keys.c.job_id).where(
                    idempotency_keys.c.owner == owner, idempotency_keys.c.key == key
                )
            ).first()
        return None if row is None else (row.request_hash, row.job_id)

    def list_events(self, job_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventRecord]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(job_events)
                .where(job_events.c.job_id == job_id, job_events.c.id > after_id)
                .order_by(job_events.c.id)
                .limit(limit)
            ).all()
        return [
            EventRecord(r.id, r.job_id, r.at, r.type, r.actor, r.message, decode_json(r.data) if r.data else {})
            for r in rows
        ]

    def recent_samples(self, job_id: str, since: float) -> list[tuple[float, int, int, float]]:
        """The job's progress samples since ``since``: (at, processed, failed, partial), oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    progress_samples.c.at,
                    progress_samples.c.done,
                    progress_samples.c.failed,
                    progress_samples.c.partial,
                )
                .where(progress_samples.c.job_id == job_id, progress_samples.c.at >= since)
                .order_by(progress_samples.c.at)
            ).all()
        return [(r.at, r.done, r.failed, r.partial) for r in rows]

    # -- lifecycle moves ------------------------------------------------------------------------------------

    def pause_job(self, job_id: str, *, actor: str | None = None, reason: str | None = None) -> JobRecord:
        """A person pauses the job: ``status_reason`` ``paused_by_user``, with their ``reason`` as the message.

        A job the system paused (its handler, a spent quota) is taken over: it becomes the person's pause, so a
        quota top-up no longer resumes it."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            taken_over = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status == JobStatus.PAUSED,
                    jobs.c.status_reason.is_not(None),
                    jobs.c.status_reason != StatusReason.PAUSED_BY_USER,
                )
                .values(status_reason=StatusReason.PAUSED_BY_USER, status_message=reason, last_activity_at=now)
            ).rowcount
            if not taken_over:
                move_job(
                    conn,
                    job_id,
                    Action.PAUSE,
                    last_activity_at=now,
                    status_reason=StatusReason.PAUSED_BY_USER,
                    status_message=reason,
                )
            add_event(
                conn,
                job_id,
                now,
                "paused",
                actor=actor,
                message=reason,
                data={"reason": StatusReason.PAUSED_BY_USER.value, "message": reason},
            )
        return self.get_job(job_id)

    def resume_job(self, job_id: str, *, actor: str | None = None, reason: str | None = None) -> JobRecord:
        with self.db.write() as conn:
            now = self.db.now(conn)
            move_job(conn, job_id, Action.RESUME, last_activity_at=now)
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.started_at.is_(None)).values(status=JobStatus.QUEUED)
            )
            settle_job(conn, job_id, now)
            add_event(conn, job_id, now, "resumed", actor=actor, message=reason)
            self.wakeups.wake_workers(conn)
        self.wakeups.after_commit_wake()
        return self.get_job(job_id)

    def cancel_job(self, job_id: str, *, actor: str | None = None, reason: str | None = None) -> JobRecord:
        """Cancel queued items at once; running ones are told (via heartbeats) and the job settles after them."""
        with self.db.write() as conn:
            now = self.db.now(conn)
            move_job(conn, job_id, Action.CANCEL, last_activity_at=now)
            n = stop_queued_items(conn, job_id, now)
            add_event(
                conn,
                job_id,
                now,
                "cancelled" if settle_job(conn, job_id, now, record=False) else "cancelling",
                actor=actor,
                message=reason,
                data={"queued_items_cancelled": n},
            )
        return self.get_job(job_id)

    def stop_job(self, job_id: str, action: Action, error: dict[str, Any], *, actor: str | None = None) -> bool:
        """Fail or expire a job (failure threshold, completion window): queued items are cancelled."""
        with self.db.write() as conn:
            return stop_job(conn, job_id, action, error, self.db.now(conn), actor=actor)

    def retry_items(
        self,
        job_id: str,
        include: frozenset[ItemStatus] | None = None,
        *,
        actor: str | None = None,
        error_signature: str | None = None,
    ) -> tuple[JobRecord, int]:
        """Queue a job's failed items (and cancelled ones, see :func:`~batchyard.core.lifecycle.retry_includes`)
        again with fresh attempts; succeeded and skipped items keep their results. Returns the job and how many.
        With ``error_signature`` only the failed items of that error group (a group with none is NotFound).

        A cancelled or expired job runs again (a ``rerun`` event instead of ``retried``); an expired one, and any
        rerun job with a completion window, gets a fresh window of the same length from now."""
        from batchyard.errors import IllegalTransition

        with self.db.write() as conn:
            now = self.db.now(conn)
            row = conn.execute(
                select(
                    jobs.c.status,
                    jobs.c.failed,
                    jobs.c.cancelled,
                    jobs.c.started_at,
                    jobs.c.created_at,
                    jobs.c.expires_at,
                )
                .where(jobs.c.id == job_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}", param="job_id")
            statuses = retry_includes(row.status, include)
            rerun = row.status in RERUN_JOB_STATUSES
            window: dict[str, Any] = {}
            if rerun and row.expires_at is not None:
                window["expires_at"] = now + max(0.0, row.expires_at - row.created_at)
            current, _ = move_job(
                conn,
                job_id,
                Action.RETRY,
                last_activity_at=now,
                finished_at=None,
                files_written_at=None,
                files_lease_until=None,
                result_files=None,
                error=None,
                **window,
            )
            waiting = {ItemStatus.FAILED: row.failed, ItemStatus.CANCELLED: row.cancelled}
            if not any(waiting[s] for s in statuses):
                what = " or ".join(sorted(s.value for s in statuses))
                raise IllegalTransition(f"job {job_id} has no {what} items to retry", current=current)
            if rerun and row.started_at is None:  # cancelled before anything ran: it waits to start again
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(status=JobStatus.QUEUED))
            requeued = {s: self._requeue_items(conn, job_id, s, now, error_signature) for s in sorted(statuses)}
            n = sum(requeued.values())
            if error_signature is not None and not n:
                raise NotFound(
                    f"job {job_id} has no failed items in error group {error_signature!r} (retried already?)",
                    param="error_group",
                )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    failed=jobs.c.failed - requeued.get(ItemStatus.FAILED, 0),
                    cancelled=jobs.c.cancelled - requeued.get(ItemStatus.CANCELLED, 0),
                    queued=jobs.c.queued + n,
                    retry_due_at=now,
                )
            )
            kind, message, data = _retry_event(current, n, requeued, error_signature)
            add_event(conn, job_id, now, kind, actor=actor, message=message, data=data)
            self.wakeups.wake_workers(conn)
        self.wakeups.after_commit_wake()
        return self.get_job(job_id), n

    def _requeue_items(
        self, conn: Connection, job_id: str, status: ItemStatus, now: float, error_signature: str | None = None
    ) -> int:
        """Every item of the job in ``status`` (of one error group, with ``error_signature``) back to the queue
        with fresh attempts; returns how many."""
        chosen = [items.c.job_id == job_id, items.c.status == status]
        if error_signature is not None:  # over ix_items_error_signature: the group's items only
            chosen.append(items.c.error_signature == error_signature)
        conn.execute(
            insert(item_requeue).from_select(
                ["job_id", "seq", "available_at"], select(items.c.job_id, items.c.seq, _literal(now)).where(*chosen)
            )
        )
        return int(
            conn.execute(
                update(items)
                .where(*chosen)
                .values(
                    status=ItemStatus.QUEUED,
                    attempts=0,
                    rescues=0,
                    available_at=now,
                    finished_at=None,
                    result=None,
                    lease_token=None,
                    error_signature=None,
                )
            ).rowcount
        )

    def delete_job(self, job_id: str, *, actor: str | None = None) -> JobRecord:
        """Delete a finished job's rows (the service deletes its files)."""
        with self.db.write() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}", param="job_id")
            next_job_status(row.status, Action.DELETE)
            for table in (items, item_requeue, leases, job_events, progress_samples, job_usage, item_progress):
                conn.execute(delete(table).where(table.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return JobRecord.from_row(row)


def _awaiting_items(handler: str, now: float) -> list[Any]:
    return [
        jobs.c.handler == handler,
        jobs.c.status.in_(_FILLABLE),
        jobs.c.total == 0,
        or_(jobs.c.files_lease_until.is_(None), jobs.c.files_lease_until < now),
    ]


def job_conditions(where: JobFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a job filter (shared by lists, counts, bulk actions and the history)."""
    conditions: list[ColumnElement[bool]] = []
    if where.owner is not None:
        conditions.append(jobs.c.owner == where.owner)
    if where.statuses:
        conditions.append(jobs.c.status.in_(list(where.statuses)))
    if where.handler:
        conditions.append(jobs.c.handler == where.handler)
    if where.project:
        conditions.append(jobs.c.project == where.project)
    if where.tag:
        conditions.append(jobs.c.tags.contains(json.dumps(where.tag), autoescape=True))
    if where.created_after is not None:
        conditions.append(jobs.c.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(jobs.c.created_at < where.created_before)
    if where.search:
        conditions.append(_search(where.search))
    return conditions


def _search(text: str) -> ColumnElement[bool]:
    """A job id or a prefix of one (``job_`` and hex digits) is looked up in the primary key, as a range (LIKE
    would need a special index on either database); anything else is searched in ids, descriptions and tags
    (case-insensitive: a scan of the jobs the other filters leave)."""
    bounds = id_prefix_range(text)
    if bounds is not None:
        low, high = bounds
        return and_(jobs.c.id >= low, jobs.c.id < high) if high is not None else jobs.c.id >= low
    term = text.lower()
    return or_(
        jobs.c.id.startswith(text, autoescape=True),
        func.lower(jobs.c.description).contains(term, autoescape=True),
        func.lower(jobs.c.tags).contains(term, autoescape=True),
    )


def _eligible(statuses: Sequence[str] | None, with_failed: bool) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if statuses is not None:
        conditions.append(jobs.c.status.in_(list(statuses)))
    if with_failed:
        conditions.append(jobs.c.failed > 0)
    return conditions


def _retry_event(
    previous: str, n: int, requeued: dict[ItemStatus, int], error_signature: str | None
) -> tuple[str, str, dict[str, Any]]:
    """(type, message, data) of a retry's timeline event: ``retried`` for a live or finished job, ``rerun`` for a
    cancelled or expired one run again (with the items queued by status and the status it had)."""
    group = f" of error group {error_signature}" if error_signature else ""
    data: dict[str, Any] = {"items": n}
    if previous in RERUN_JOB_STATUSES:
        counts = ", ".join(f"{k} {v.value}" for v, k in requeued.items() if k)
        data.update({v.value: k for v, k in requeued.items()}, previous_status=previous)
        message = f"{n} item(s){group} queued again ({counts}): the {previous} job runs again"
        kind = "rerun"
    else:
        what = " and ".join(f"{v.value}" for v, k in requeued.items() if k)
        message = f"{n} {what} item(s){group} queued again"
        kind = "retried"
    if error_signature:
        data["error_group"] = error_signature
    return kind, message, data


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _literal(value: float) -> Any:
    from sqlalchemy import Float, literal

    return literal(value, Float)
