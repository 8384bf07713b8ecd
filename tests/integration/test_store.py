"""The store on SQLite and PostgreSQL: claims, fencing, rescue, lifecycle moves, counters."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import ColumnElement, and_, update

from batchyard import Batchyard, InputInvalid
from batchyard.core.lifecycle import Action, OutcomeKind
from batchyard.core.records import ClaimBatch, Outcome
from batchyard.errors import (
    DuplicateIdempotencyKey,
    IllegalTransition,
    InvalidValue,
    NotFound,
    UnknownHandler,
)
from batchyard.store.schema import item_requeue, jobs, leases

from .helpers import assert_counters_match_items, wait_store_clock_past


def _wait_lease_ended(app: Batchyard, which: ColumnElement[bool]) -> None:
    """Until the lease has run out as the store sees it (a worker that "died" holding it)."""
    wait_store_clock_past(app, leases.c.expires_at, which, what="the lease to run out")


def _done(batch: ClaimBatch, kind: OutcomeKind = "succeeded") -> list[Outcome]:
    return [
        Outcome(
            batch.job.id, it.seq, batch.lease_token, kind, result=json.dumps({"k": it.key}), finished_at=time.time()
        )
        for it in batch.items
    ]


def test_submit_stores_items_and_counters(app: Batchyard) -> None:
    job = app.submit("echo", [{"custom_id": f"a{i}", "n": i} for i in range(25)], description="d", tags=["x"])
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.total, record.queued, record.running) == ("queued", 25, 25, 0)
    assert record.description == "d" and record.tags == ["x"]
    item = app.store.items.get_item(job.id, "a7")
    assert item.payload == {"custom_id": "a7", "n": 7} and item.status == "queued" and item.seq == 7
    assert [e.type for e in app.store.jobs.list_events(job.id)] == ["created"]
    assert_counters_match_items(app, job.id)


def test_bad_input_creates_nothing(app: Batchyard, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"custom_id": "a"}\n{"custom_id": "b"\n[1, 2]\n{"custom_id": "a"}\n\xff\xfe\n')
    with pytest.raises(InputInvalid) as info:
        app.submit("echo", bad)
    lines = [(p.line, p.code) for p in info.value.problems]
    assert lines == [(2, "invalid_json"), (3, "not_an_object"), (4, "duplicate_key"), (5, "invalid_utf8")]
    assert info.value.total == 4
    assert app.store.jobs.list_jobs() == []
    from sqlalchemy import func, select

    from batchyard.store.schema import items, job_events

    with app.store.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(items)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(job_events)).scalar_one() == 0


def test_unknown_handler_is_refused(app: Batchyard) -> None:
    with pytest.raises(UnknownHandler, match="no handler named 'nope'"):
        app.submit("nope", [{"a": 1}])
    assert app.store.jobs.list_jobs() == []


def test_claim_moves_counters_and_starts_job(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(10)])
    batch = app.store.claims.claim_items("w1", {"echo": 4}, 30)
    assert batch is not None and [i.seq for i in batch.items] == [0, 1, 2, 3]
    assert all(i.attempt == 1 for i in batch.items)
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.queued, record.running) == ("running", 6, 4)
    report = app.store.claims.complete_items(_done(batch), [batch.lease_token])
    assert report.accepted == 4
    record = app.store.jobs.get_job(job.id)
    assert (record.queued, record.running, record.succeeded) == (6, 0, 4)
    assert app.store.items.get_item(job.id, "1").result == {"k": "1"}
    assert_counters_match_items(app, job.id)


def test_completion_with_stale_lease_token_changes_nothing(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(3)])
    stale = app.store.claims.claim_items("w1", {"echo": 10}, 0.05)
    assert stale is not None
    _wait_lease_ended(app, leases.c.token == stale.lease_token)
    assert app.store.claims.rescue_expired_leases() == 3  # the worker "died": its items go back to the queue
    fresh = app.store.claims.claim_items("w2", {"echo": 10}, 30)
    assert fresh is not None and sorted(i.seq for i in fresh.items) == [0, 1, 2]
    assert all(i.attempt == 1 for i in fresh.items)  # a rescue gives the attempt back
    assert fresh.suspect  # ...and the items come back as suspects, claimed apart
    # The first worker wakes up and reports: fenced out, nothing changes.
    report = app.store.claims.complete_items(_done(stale, "failed"), [stale.lease_token])
    assert report.accepted == 0
    record = app.store.jobs.get_job(job.id)
    assert (record.running, record.failed, record.succeeded) == (3, 0, 0)
    assert app.store.claims.complete_items(_done(fresh), [fresh.lease_token]).accepted == 3
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.succeeded, record.failed) == ("finalizing", 3, 0)
    assert_counters_match_items(app, job.id)


def test_rescue_does_not_spend_attempts(app: Batchyard) -> None:
    """An item merely in flight when its worker died did nothing wrong: max_attempts=1 still lets it run again."""
    job = app.submit("echo", [{"n": 1}], max_attempts=1)
    app.store.claims.claim_items("w1", {"echo": 10}, 0.01)
    _wait_lease_ended(app, leases.c.worker_id == "w1")
    assert app.store.claims.rescue_expired_leases() == 1
    item = app.store.items.get_item(job.id, "1")
    assert (item.status, item.attempts, item.rescues) == ("queued", 0, 1)
    assert item.error is not None and item.error["code"] == "lease_expired"
    batch = app.store.claims.claim_items("w2", {"echo": 10}, 30)
    assert batch is not None and [i.attempt for i in batch.items] == [1]
    assert app.store.claims.complete_items(_done(batch), [batch.lease_token]).accepted == 1
    assert app.store.jobs.get_job(job.id).status == "finalizing"
    assert_counters_match_items(app, job.id)


def test_suspects_are_claimed_apart_in_halving_groups(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(40)])
    crashed = app.store.claims.claim_items("w1", {"echo": 40}, 0.01)
    assert crashed is not None and len(crashed.items) == 40 and not crashed.suspect
    _wait_lease_ended(app, leases.c.token == crashed.lease_token)
    assert app.store.claims.rescue_expired_leases(max_rescues=4) == 40
    # A worker that already runs a group of suspects gets none: nothing else is due.
    none_due = app.store.claims.claim_items("w2", {"echo": 40}, 30, suspects=False, max_rescues=4)
    assert none_due is not None and none_due.items == []
    # Level 1 of 4: groups of 1 << (4 - 1 - 1) = 4.
    group = app.store.claims.claim_items("w2", {"echo": 40}, 0.01, max_rescues=4)
    assert group is not None and group.suspect and len(group.items) == 4
    _wait_lease_ended(app, leases.c.token == group.lease_token)
    assert app.store.claims.rescue_expired_leases(max_rescues=4) == 4  # it crashed again: level 2, groups of 2
    group = app.store.claims.claim_items("w2", {"echo": 40}, 0.01, max_rescues=4)
    assert group is not None and group.suspect and [i.seq for i in group.items] == [0, 1]
    assert {app.store.items.get_item(job.id, key).rescues for key in ("1", "2")} == {2}  # keys: line numbers
    assert app.store.items.get_item(job.id, "6").rescues == 1
    assert_counters_match_items(app, job.id)


def test_an_item_that_keeps_killing_its_worker_is_set_aside_as_poison(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(8)])
    bad = "3"
    for _ in range(10):  # the worker "dies" whenever it holds item 3; the others are finished by a good one
        batch = app.store.claims.claim_items("w", {"echo": 8}, 0.01, max_rescues=4)
        if batch is None:
            break
        keys = {i.key for i in batch.items}
        if bad in keys:
            _wait_lease_ended(app, leases.c.token == batch.lease_token)
            app.store.claims.rescue_expired_leases(max_rescues=4)
        else:
            app.store.claims.complete_items(_done(batch), [batch.lease_token])
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.succeeded, record.failed) == ("finalizing", 7, 1)
    poison = app.store.items.get_item(job.id, bad)
    assert poison.status == "failed" and poison.error is not None and poison.error["code"] == "poison"
    assert poison.rescues == 3 and poison.attempts == 1
    assert all(app.store.items.get_item(job.id, str(n)).status == "succeeded" for n in range(1, 9) if str(n) != bad)
    assert_counters_match_items(app, job.id)


def test_heartbeat_keeps_leases_alive(app: Batchyard) -> None:
    app.submit("echo", [{"n": 1}])
    app.store.workers.register_worker("w1", "host", 1, ["echo"], 1)
    app.store.claims.claim_items("w1", {"echo": 10}, 0.3)
    for _ in range(4):  # together longer than the lease: time passing is what this tests
        time.sleep(0.1)
        app.store.claims.heartbeat("w1", 1, 0.3)
    assert app.store.claims.rescue_expired_leases() == 0


def test_retry_and_release_requeue_items(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(4)])
    batch = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert batch is not None
    outs = _done(batch)
    outs[0].kind, outs[0].retry_delay = "retry", 3600.0  # still backing off below, however slow the machine is
    outs[1].kind = "release"
    app.store.claims.complete_items(outs, [batch.lease_token])
    record = app.store.jobs.get_job(job.id)
    assert (record.queued, record.succeeded) == (2, 2)
    again = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert again is not None and [(i.seq, i.attempt) for i in again.items] == [(1, 1)]  # release: not counted
    app.store.claims.complete_items(_done(again), [again.lease_token])
    assert app.store.claims.claim_items("w1", {"echo": 10}, 30) is None  # item 0 is still backing off
    due = and_(item_requeue.c.job_id == job.id, item_requeue.c.seq == 0)
    with app.store.db.write() as conn:  # the hour passes (the job keeps its earliest retry's due time too)
        past = time.time() - 60
        assert conn.execute(update(item_requeue).where(due).values(available_at=past)).rowcount == 1
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(retry_due_at=past))
    late = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert late is not None and [(i.seq, i.attempt) for i in late.items] == [(0, 2)]
    assert_counters_match_items(app, job.id)


def test_priority_then_round_robin(app: Batchyard) -> None:
    big = app.submit("echo", [{"n": i} for i in range(100)])
    small = app.submit("echo", [{"n": i} for i in range(3)])
    urgent = app.submit("echo", [{"n": 1}], priority=5)
    order = []
    for _ in range(4):
        batch = app.store.claims.claim_items("w1", {"echo": 10}, 30)
        assert batch is not None
        order.append(batch.job.id)
    assert order[0] == urgent.id
    assert set(order[1:3]) == {big.id, small.id}  # neither waits for the other
    assert order[3] == big.id


def test_scheduled_job_waits_and_concurrency_caps(app: Batchyard) -> None:
    app.submit("echo", [{"n": 1}], scheduled_at=time.time() + 3600)
    capped = app.submit("echo", [{"n": i} for i in range(10)], concurrency=2)
    batch = app.store.claims.claim_items("w1", {"echo": 100}, 30)
    assert batch is not None and batch.job.id == capped.id and len(batch.items) == 2
    assert app.store.claims.claim_items("w1", {"echo": 100}, 30) is None


def test_lifecycle_moves_and_illegal_ones(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(5)])
    assert app.service.pause(job.id).job.status == "paused"
    assert app.store.claims.claim_items("w1", {"echo": 10}, 30) is None  # claims skip paused jobs
    with pytest.raises(IllegalTransition) as info:
        app.service.pause(job.id)
    assert info.value.current == "paused" and info.value.status == 409
    assert app.service.resume(job.id).job.status == "queued"  # never started
    with pytest.raises(IllegalTransition, match="cannot delete a job that is queued"):
        app.service.delete(job.id)
    view = app.service.cancel(job.id)
    assert (view.job.status, view.job.cancelled, view.job.queued) == ("cancelled", 5, 0)
    with pytest.raises(IllegalTransition, match="cancelled"):
        app.service.cancel(job.id)
    with pytest.raises(IllegalTransition):
        app.service.resume(job.id)
    types = [e.type for e in app.store.jobs.list_events(job.id)]
    assert types == ["created", "paused", "resumed", "cancelled"]
    assert_counters_match_items(app, job.id)
    app.service.delete(job.id)
    with pytest.raises(NotFound):
        app.store.jobs.get_job(job.id)
    assert app.store.items.recount(job.id) == {}


def test_cancel_with_running_items_settles_after_them(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(6)])
    batch = app.store.claims.claim_items("w1", {"echo": 2}, 30)
    assert batch is not None
    view = app.service.cancel(job.id)
    assert (view.job.status, view.job.running, view.job.cancelled) == ("cancelling", 2, 4)
    outs = _done(batch)
    outs[1].kind = "retry"  # a retry of a cancelling job's item ends it cancelled
    app.store.claims.complete_items(outs, [batch.lease_token])
    record = app.store.jobs.get_job(job.id)
    assert (record.status, record.succeeded, record.cancelled) == ("cancelled", 1, 5)
    assert_counters_match_items(app, job.id)


def test_retry_failed_items_only(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(4)])
    batch = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert batch is not None
    outs = _done(batch)
    outs[2].kind = outs[3].kind = "failed"
    app.store.claims.complete_items(outs, [batch.lease_token])
    with pytest.raises(IllegalTransition, match="finalizing"):
        app.service.retry_failed(job.id)
    from batchyard.services.maintenance import Maintenance

    Maintenance(app.store, app.storage, app.settings).run_once()
    assert app.store.jobs.get_job(job.id).status == "completed"
    view, n = app.service.retry_failed(job.id)
    assert n == 2 and view.job.status == "running" and (view.job.failed, view.job.queued) == (0, 2)
    again = app.store.claims.claim_items("w1", {"echo": 10}, 30)
    assert again is not None and sorted((i.seq, i.attempt) for i in again.items) == [(2, 1), (3, 1)]
    assert_counters_match_items(app, job.id)


def test_failure_threshold_and_expiry_stop_jobs(app: Batchyard) -> None:
    failing = app.submit("echo", [{"n": i} for i in range(5)], max_failures=0)
    batch = app.store.claims.claim_items("w1", {"echo": 1}, 30)
    assert batch is not None
    app.store.claims.complete_items(_done(batch, "failed"), [batch.lease_token])
    f = app.store.jobs.get_job(failing.id)  # the failure that crosses the threshold fails the job at once
    assert (f.status, f.failed, f.cancelled) == ("failed", 1, 4)
    assert f.error is not None and f.error["code"] == "failure_threshold"
    expiring = app.submit("echo", [{"n": 1}], expires_in_seconds=0.01)
    wait_store_clock_past(app, jobs.c.expires_at, jobs.c.id == expiring.id, what="the job's expiry")
    from batchyard.services.maintenance import Maintenance

    report = Maintenance(app.store, app.storage, app.settings).run_once()
    assert report.expired_jobs == 1
    e = app.store.jobs.get_job(expiring.id)
    assert (e.status, e.cancelled) == ("expired", 1)
    assert app.store.jobs.stop_job(failing.id, Action.FAIL, {"message": "again"}) is False
    for job_id in (failing.id, expiring.id):
        assert_counters_match_items(app, job_id)


CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad_inputs"


def test_bad_input_corpus_through_submit_inserts_nothing(app: Batchyard) -> None:
    """Every bad file of the corpus is refused with its line numbers, and leaves no job, item or event."""
    from sqlalchemy import func, select

    from batchyard.store.schema import item_requeue, items, job_events, jobs

    app.settings.max_line_bytes = 1024
    expected = json.loads((CORPUS / "expected.json").read_text())
    refused = 0
    for name, problems in sorted(expected.items()):
        if not problems:
            continue  # the controls (valid files) are covered by the unit corpus test
        with pytest.raises(InputInvalid) as info:
            app.submit("echo", CORPUS / name)
        assert [[p.line, p.code] for p in info.value.problems] == problems, name
        refused += 1
    assert refused >= 15
    with app.store.db.read() as conn:
        for table in (jobs, items, job_events, item_requeue):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name


def test_progress_samples_feed_throughput_and_eta(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(100)])
    app.store.workers.register_worker("w1", "host", 1, ["echo"], 30)  # a live worker: else there is no ETA
    batch = app.store.claims.claim_items("w1", {"echo": 30}, 30)
    assert batch is not None
    assert app.store.upkeep.record_progress_samples(0.05) == 1
    assert app.store.upkeep.record_progress_samples(60) == 0  # one sample per interval, whoever records it
    app.store.claims.complete_items(_done(batch), [batch.lease_token])
    time.sleep(0.1)  # past the sampling interval under test
    assert app.store.upkeep.record_progress_samples(0.05) == 1
    samples = app.store.jobs.recent_samples(job.id, 0)
    assert [(done, partial) for _, done, _, partial in samples] == [(0, 0.0), (30, 0.0)]
    view = app.service.get(job.id)
    assert view.items_per_second is not None and view.items_per_second > 0
    assert view.eta_seconds is not None and view.eta_seconds > 0


def test_delete_removes_rows_and_files(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": 1}])
    job.wait(timeout=20)
    folder = app.storage.path(f"jobs/{job.id}")
    assert (folder / "results.jsonl").is_file()
    app.service.delete(job.id)
    assert not folder.exists()
    assert app.store.jobs.list_events(job.id) == []


def test_driver_errors_become_batchyard_errors(app: Batchyard) -> None:
    """The store maps what the database refuses to Batchyard's errors; nothing above it sees a driver error."""
    first = app.service.submit("echo", [{"n": 1}], owner="alice", idempotency=("key-1", "hash-a"))
    with pytest.raises(DuplicateIdempotencyKey):  # what a concurrent twin of the first request meets
        app.service.submit("echo", [{"n": 2}], owner="alice", idempotency=("key-1", "hash-b"))
    assert app.store.jobs.find_idempotent_job("alice", "key-1") == ("hash-a", first.id)
    assert [j.id for j in app.store.jobs.list_jobs(owner="alice")] == [first.id], "the twin left nothing behind"
    if app.store.is_postgres:  # PostgreSQL text cannot hold NUL; SQLite stores it
        with pytest.raises(InvalidValue) as refused:
            app.store.jobs.list_jobs(search="a\x00b")
        assert refused.value.status == 400 and refused.value.to_dict()["type"] == "InvalidRequest"
    else:
        assert app.store.jobs.list_jobs(search="a\x00b") == []
