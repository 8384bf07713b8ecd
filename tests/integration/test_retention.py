"""Retention on SQLite and PostgreSQL: pruning removes old finished jobs with everything they own, expired uploads,
and nothing else; a dry run counts exactly what the real run removes; deletion goes in chunks and survives a
pruner that died half-way; maintenance prunes by itself when BATCHYARD_JOB_RETENTION_DAYS is set."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from batchyard import Batchyard, ItemContext
from batchyard.errors import NotFound
from batchyard.services.auth import Principal, Role
from batchyard.services.files import upload_name
from batchyard.services.maintenance import Maintenance
from batchyard.store.schema import (
    files,
    idempotency_keys,
    item_requeue,
    items,
    job_events,
    job_purges,
    job_usage,
    jobs,
    leases,
    progress_samples,
)

from .helpers import assert_counters_match_items, running_worker, wait_finished

DAY = 86400.0
JOB_TABLES = (items, item_requeue, leases, job_events, progress_samples, job_usage)


def with_artifact(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
    ctx.save_artifact(f"{ctx.key}.txt", "x" * 100)
    ctx.add_usage(words=2)
    return item


def finished_job(app: Batchyard, owner: str, n: int, **options: Any) -> str:
    job = app.service.submit("with_artifact", [{"n": i} for i in range(n)], owner=owner, **options)
    with running_worker(app, handlers=["with_artifact"], job_ids=[job.id]):
        wait_finished(app, job.id)
    return job.id


def age(app: Batchyard, job_id: str, days: float) -> None:
    """Move a job's timestamps ``days`` into the past, as if it had run then."""
    shift = days * DAY
    with app.store.db.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                created_at=jobs.c.created_at - shift,
                started_at=jobs.c.started_at - shift,
                finished_at=jobs.c.finished_at - shift,
            )
        )


def rows_of(app: Batchyard, job_id: str) -> dict[str, int]:
    with app.store.db.read() as conn:
        counts = {
            t.name: int(conn.execute(select(func.count()).select_from(t).where(t.c.job_id == job_id)).scalar_one())
            for t in (*JOB_TABLES, job_purges)
        }
        counts["jobs"] = int(conn.execute(select(func.count()).where(jobs.c.id == job_id)).scalar_one())
        counts["idempotency_keys"] = int(
            conn.execute(select(func.count()).where(idempotency_keys.c.job_id == job_id)).scalar_one()
        )
    return counts


def upload(app: Batchyard, owner: str, data: bytes, expires_in: float | None) -> str:
    record = app.files.upload(Principal(owner, Role.MEMBER), io.BytesIO(data), filename="in.jsonl")
    if expires_in is not None:
        with app.store.db.write() as conn:
            conn.execute(update(files).where(files.c.id == record.id).values(expires_at=time.time() + expires_in))
    return record.id


@pytest.fixture
def scene(app: Batchyard) -> dict[str, str]:
    """Old finished jobs of two owners, recent ones, an old job that is not finished, and uploads."""
    app.registry.register("with_artifact", with_artifact)
    ids = {
        "old_alice": finished_job(app, "alice", 7, idempotency=("alice", "k-old")),
        "old_bob": finished_job(app, "bob", 3),
        "recent_alice": finished_job(app, "alice", 4),
        "recent_bob": finished_job(app, "bob", 2),
    }
    cancelled = app.service.submit("with_artifact", [{"n": i} for i in range(5)], owner="bob")
    app.service.cancel(cancelled.id)
    Maintenance(app.store, app.storage, app.settings).write_pending_files()
    assert app.service.get(cancelled.id).finished
    ids["old_cancelled"] = cancelled.id
    paused = app.service.submit("with_artifact", [{"n": i} for i in range(6)], owner="alice")
    app.service.pause(paused.id)
    ids["old_paused"] = paused.id
    queued = app.service.submit("with_artifact", [{"n": i} for i in range(2)], owner="carol")
    ids["old_queued"] = queued.id
    for name in ("old_alice", "old_bob", "old_cancelled", "old_paused", "old_queued"):
        age(app, ids[name], 40)
    age(app, ids["recent_bob"], 10)
    with app.store.db.write() as conn:  # a progress sample of an old job must go too
        conn.execute(insert(progress_samples).values(job_id=ids["old_alice"], at=1.0, done=7, failed=0))
    ids["expired_upload"] = upload(app, "alice", b'{"n": 1}\n' * 10, expires_in=-60)
    ids["live_upload"] = upload(app, "alice", b'{"n": 2}\n', expires_in=3600)
    ids["kept_upload"] = upload(app, "bob", b'{"n": 3}\n', expires_in=None)
    return ids


OLD = ("old_alice", "old_bob", "old_cancelled")
KEPT = ("recent_alice", "recent_bob", "old_paused", "old_queued")


def test_prune_removes_old_finished_jobs_with_everything_they_own_and_nothing_else(
    app: Batchyard, scene: dict[str, str]
) -> None:
    storage = app.storage
    before = {name: rows_of(app, scene[name]) for name in (*OLD, *KEPT)}
    assert before["old_alice"]["items"] == 7 and before["old_alice"]["job_events"] >= 2
    assert before["old_alice"]["progress_samples"] >= 1 and before["old_alice"]["job_usage"] == 1
    assert before["old_alice"]["idempotency_keys"] == 1
    assert storage.list(f"jobs/{scene['old_alice']}/artifacts")  # artifacts on disk
    kept_files = {name: storage.usage(f"jobs/{scene[name]}") for name in KEPT}

    plan = app.retention.plan(30 * DAY)
    report = app.retention.prune(30 * DAY)

    expected_items = 7 + 3 + 5
    assert (plan.jobs, plan.items, plan.uploads) == (3, expected_items, 1)
    assert (report.jobs, report.items, report.uploads, report.files, report.bytes) == (
        plan.jobs,
        plan.items,
        plan.uploads,
        plan.files,
        plan.bytes,
    )
    assert report.files > 3 and report.bytes > 700  # result files, 10 artifacts of 100 bytes, the upload
    assert report.done and not report.dry_run
    for name in OLD:
        job_id = scene[name]
        with pytest.raises(NotFound):
            app.service.get(job_id)
        assert set(rows_of(app, job_id).values()) == {0}, (name, rows_of(app, job_id))
        assert storage.usage(f"jobs/{job_id}") == (0, 0)
    for name in KEPT:
        job_id = scene[name]
        assert rows_of(app, job_id) == before[name], name
        assert storage.usage(f"jobs/{job_id}") == kept_files[name]
        assert_counters_match_items(app, job_id)
    assert app.service.get(scene["recent_alice"]).job.result_files
    # uploads: the expired one is gone (row and bytes), the others stay
    with pytest.raises(NotFound):
        app.store.uploads.get_file(scene["expired_upload"])
    assert not storage.exists(upload_name(scene["expired_upload"]))
    for name in ("live_upload", "kept_upload"):
        assert app.store.uploads.get_file(scene[name]).id == scene[name]
        assert storage.exists(upload_name(scene[name]))
    # an idempotent replay of the pruned job's key creates a new job instead of naming the deleted one
    replay = app.service.submit("with_artifact", [{"n": 1}], owner="alice", idempotency=("alice", "k-old"))
    assert replay.id != scene["old_alice"]

    again = app.retention.plan(30 * DAY)
    assert (again.jobs, again.items, again.uploads, again.files, again.bytes) == (0, 0, 0, 0, 0)


def test_a_younger_age_reaches_recent_jobs_and_an_older_one_nothing(app: Batchyard, scene: dict[str, str]) -> None:
    assert app.retention.plan(60 * DAY).jobs == 0
    report = app.retention.prune(5 * DAY)
    assert report.jobs == 4  # the three old ones and recent_bob (10 days)
    with pytest.raises(NotFound):
        app.service.get(scene["recent_bob"])
    assert app.service.get(scene["recent_alice"]).finished
    assert app.service.get(scene["old_paused"]).job.status == "paused"


def test_items_go_in_chunks_and_a_pruner_that_died_half_way_is_carried_on(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.registry.register("with_artifact", with_artifact)
    chunked = Batchyard(app.settings.model_copy(update={"prune_chunk_rows": 3}), demo_handlers=True)
    try:
        job_id = finished_job(app, "alice", 10)
        age(app, job_id, 40)
        retention = chunked.retention
        cutoff = chunked.store.retention.clock() - 30 * DAY
        assert chunked.store.retention.tombstone(job_id, cutoff)
        with pytest.raises(NotFound):  # gone for readers at once
            app.service.get(job_id)
        assert chunked.store.retention.delete_chunk(job_id, 3) == (3, 3)  # then the pruner "dies"
        assert rows_of(app, job_id)["items"] == 7
        assert chunked.store.retention.pending_purges() == [job_id]

        calls: list[int] = []
        original = chunked.store.retention.delete_chunk

        def counting(job: str, chunk: int) -> tuple[int, int]:
            calls.append(chunk)
            return original(job, chunk)

        monkeypatch.setattr(chunked.store.retention, "delete_chunk", counting)
        report = retention.prune(None)
        assert report.items == 7 and report.jobs == 0  # carried on: the job was counted by the run that died
        assert all(size == 3 for size in calls) and len(calls) >= 4  # 7 items in chunks of 3, then the rest
        assert set(rows_of(app, job_id).values()) == {0}
        assert app.storage.usage(f"jobs/{job_id}") == (0, 0)
    finally:
        chunked.close()


def test_a_job_retried_after_it_was_listed_is_not_pruned(app: Batchyard) -> None:
    def fails(item: dict[str, Any], ctx: ItemContext) -> None:
        raise ValueError("no")

    app.registry.register("fails", fails, max_attempts=1)
    job = app.service.submit("fails", [{"n": 1}, {"n": 2}], owner="alice")
    with running_worker(app, handlers=["fails"], job_ids=[job.id]):
        wait_finished(app, job.id)
    age(app, job.id, 40)
    cutoff = app.store.retention.clock() - 30 * DAY
    assert app.store.retention.prunable_jobs(cutoff, 10) == [job.id]
    app.service.retry_failed(job.id)  # between the listing and the deletion
    assert not app.store.retention.tombstone(job.id, cutoff)
    assert app.service.get(job.id).job.status == "running"
    assert rows_of(app, job.id)["items"] == 2


def test_maintenance_prunes_by_itself_when_retention_is_set(app: Batchyard, scene: dict[str, str]) -> None:
    settings = app.settings.model_copy(update={"job_retention_days": 30.0})
    maintenance = Maintenance(app.store, app.storage, settings)
    report = maintenance.run_once()
    assert report.pruned_jobs == 3
    for name in OLD:
        with pytest.raises(NotFound):
            app.service.get(scene[name])
    for name in KEPT:
        assert app.service.get(scene[name]).job.id == scene[name]
    with pytest.raises(NotFound):
        app.store.uploads.get_file(scene["expired_upload"])


def test_without_retention_maintenance_keeps_old_jobs(app: Batchyard, scene: dict[str, str]) -> None:
    assert app.settings.job_retention_days is None
    Maintenance(app.store, app.storage, app.settings).run_once()
    for name in (*OLD, *KEPT):
        assert app.service.get(scene[name]).job.id == scene[name]
