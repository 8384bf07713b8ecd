"""The completer alone, against a real store (as River tests its job completer): outcomes in, one batched
write out, and the books -- capacity, leases, suspects, job controls -- kept right through failures."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from batchyard import Batchyard
from batchyard.core.lifecycle import OutcomeKind
from batchyard.core.records import ClaimBatch, CompletionReport, Outcome
from batchyard.errors import StoreUnavailable
from batchyard.worker import completer as completer_module
from batchyard.worker.completer import Completer
from batchyard.worker.control import JobControls

from .helpers import assert_counters_match_items

LANES = 4


def _claimed(
    app: Batchyard, n: int, *, worker_id: str = "w1", on_flushed: Any = None
) -> tuple[Completer, ClaimBatch, JobControls]:
    app.submit("echo", [{"n": i} for i in range(n)], max_attempts=3)
    controls = JobControls()
    completer = Completer(app.store, app.settings, worker_id, {"echo": LANES}, controls=controls, on_flushed=on_flushed)
    batch = app.store.claims.claim_items(worker_id, completer.capacity(), 30.0)
    assert batch is not None and len(batch.items) == n
    controls.hold(batch.job.id, n)
    completer.track(batch)
    return completer, batch, controls


def _outcome(batch: ClaimBatch, i: int, kind: OutcomeKind = "succeeded", **fields: Any) -> Outcome:
    return Outcome(batch.job.id, batch.items[i].seq, batch.lease_token, kind, **fields)


def test_a_flush_records_outcomes_in_one_write_and_frees_what_it_held(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[CompletionReport] = []
    completer, batch, controls = _claimed(app, 4, on_flushed=flushed.append)
    job_id = batch.job.id
    assert completer.in_flight == 4 and completer.capacity() == {"echo": 2 * LANES - 4}
    writes: list[int] = []
    real = app.store.claims.complete_items

    def counted(outcomes: Sequence[Outcome], finished: Sequence[str] = ()) -> CompletionReport:
        writes.append(len(outcomes))
        return real(outcomes, finished)

    monkeypatch.setattr(app.store.claims, "complete_items", counted)

    async def scenario() -> None:
        completer.add(_outcome(batch, 0, result="1"))
        completer.add(_outcome(batch, 1, "failed", error=json.dumps({"message": "no"})))
        completer.add(_outcome(batch, 2, "retry", error=json.dumps({"message": "later"}), retry_delay=60.0))
        await completer.flush()
        assert writes == [3] and completer.in_flight == 1 and completer.capacity() == {"echo": 2 * LANES - 1}
        assert controls.get(job_id) is not None  # one of its items is still held
        completer.add(_outcome(batch, 3, result="4"))
        await completer.flush()
        await completer.flush()  # nothing left: no write

    asyncio.run(scenario())
    assert writes == [3, 1] and completer.in_flight == 0 and completer.capacity() == {"echo": 2 * LANES}
    assert (completer.stats.claimed, completer.stats.flushed, completer.stats.accepted) == (4, 4, 4)
    assert [r.accepted for r in flushed] == [3, 1]
    assert controls.get(job_id) is None  # every item recorded: the job's control is forgotten
    assert app.store.claims.expire_leases_of("w1") == 0  # the lease was dropped with its last item
    job = app.store.jobs.get_job(job_id)
    assert (job.succeeded, job.failed, job.queued, job.running) == (2, 1, 1, 0)
    assert_counters_match_items(app, job_id)


def test_an_outcome_that_cannot_be_stored_fails_its_item_alone(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    completer, batch, _ = _claimed(app, 3)
    bad_seq = batch.items[1].seq
    real = app.store.claims.complete_items

    def refuses_one(outcomes: Sequence[Outcome], finished: Sequence[str] = ()) -> CompletionReport:
        if any(o.seq == bad_seq and o.kind == "succeeded" for o in outcomes):
            raise ValueError("cannot store this one")
        return real(outcomes, finished)

    monkeypatch.setattr(app.store.claims, "complete_items", refuses_one)
    for i in range(3):
        completer.add(_outcome(batch, i, result=str(i)))
    with caplog.at_level(logging.ERROR, logger="batchyard.worker"):
        asyncio.run(completer.flush())
    assert "one at a time" in caplog.text
    assert completer.in_flight == 0 and completer.stats.accepted == 3
    assert app.store.claims.expire_leases_of("w1") == 0
    job = app.store.jobs.get_job(batch.job.id)
    assert (job.succeeded, job.failed) == (2, 1)
    failed = app.store.items.get_item(batch.job.id, batch.items[1].key)
    assert failed.status == "failed" and failed.error is not None and failed.error["code"] == "unrecordable"
    assert "cannot store this one" in failed.error["message"]
    assert_counters_match_items(app, batch.job.id)


def test_while_the_database_is_away_outcomes_wait_and_capacity_stays_held(
    app: Batchyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    completer, batch, _ = _claimed(app, 2)
    monkeypatch.setattr(completer_module, "STORE_RETRY_SECONDS", 0.0)
    real = app.store.claims.complete_items
    calls = {"n": 0}

    def away_once(outcomes: Sequence[Outcome], finished: Sequence[str] = ()) -> CompletionReport:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreUnavailable("the database is away")
        return real(outcomes, finished)

    monkeypatch.setattr(app.store.claims, "complete_items", away_once)

    async def scenario() -> None:
        completer.add(_outcome(batch, 0, result="1"))
        completer.add(_outcome(batch, 1, result="2"))
        await completer.flush()
        assert [o.seq for o in completer.outcomes] == [item.seq for item in batch.items]  # kept, in order
        assert completer.in_flight == 2 and completer.capacity() == {"echo": 2 * LANES - 2}
        await completer.flush()

    asyncio.run(scenario())
    assert not completer.outcomes and completer.in_flight == 0 and completer.stats.accepted == 2
    assert app.store.jobs.get_job(batch.job.id).succeeded == 2


def test_a_suspect_lease_is_held_until_its_items_are_recorded(app: Batchyard) -> None:
    app.submit("echo", [{"n": i} for i in range(2)])
    completer = Completer(app.store, app.settings, "w1", {"echo": LANES})
    claimed = app.store.claims.claim_items("w1", completer.capacity(), 30.0)
    assert claimed is not None
    batch = replace(claimed, suspect=True)
    completer.track(batch)
    assert completer.holds_suspects
    completer.add(_outcome(batch, 0, result="1"))
    asyncio.run(completer.flush())
    assert completer.holds_suspects  # one of its items is still out
    completer.add(_outcome(batch, 1, "release"))
    asyncio.run(completer.flush())
    assert not completer.holds_suspects and completer.in_flight == 0
    job = app.store.jobs.get_job(batch.job.id)
    assert (job.succeeded, job.queued, job.running) == (1, 1, 0)


def test_early_flushes_are_asked_for_once_half_of_what_is_in_flight_finished(app: Batchyard) -> None:
    completer, batch, _ = _claimed(app, 4)

    async def scenario() -> tuple[bool, bool]:
        completer.start()
        completer.add(_outcome(batch, 0, result="1"))
        first = completer.flush_requested
        completer.add(_outcome(batch, 1, result="2"))
        return first, completer.flush_requested

    assert asyncio.run(scenario()) == (False, True)
