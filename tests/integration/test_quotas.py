"""Quotas in the store, on SQLite and PostgreSQL: exact item budgets at claim time, pauses and resumes."""

from __future__ import annotations

import json
import time

from sqlalchemy import update

from batchyard import Batchyard, metrics
from batchyard.core.quotas import QuotaLimits, period_key
from batchyard.core.records import ClaimBatch, Outcome
from batchyard.store.schema import quota_usage

from .helpers import assert_counters_match_items


def _finish(app: Batchyard, batch: ClaimBatch, usage: dict[str, float] | None = None, cost: float = 0.0) -> None:
    outcomes = [
        Outcome(
            batch.job.id,
            it.seq,
            batch.lease_token,
            "succeeded",
            result=json.dumps({"k": it.key}),
            finished_at=time.time(),
            usage=usage,
            cost=cost,
        )
        for it in batch.items
    ]
    app.store.claims.complete_items(outcomes, [batch.lease_token])


def _claim_all(app: Batchyard, chunk: int = 4) -> int:
    """Claim and finish until nothing more is claimable; returns how many items ran."""
    ran = 0
    while (batch := app.store.claims.claim_items("w1", {"echo": chunk}, 30)) is not None:
        if not batch.items:
            break
        ran += len(batch.items)
        _finish(app, batch)
    return ran


def _quota_pauses(budget: str) -> float:
    return metrics.REGISTRY.get_sample_value("batchyard_quota_pauses_total", {"budget": budget}) or 0.0


def test_item_budget_is_exact_and_pauses_every_job_of_the_owner(app: Batchyard) -> None:
    pauses_before = _quota_pauses("items")
    app.store.quotas.put(QuotaLimits("alice", items=10, period="total"), actor="admin")
    first = app.submit("echo", [{"n": i} for i in range(7)], owner="alice")
    second = app.submit("echo", [{"n": i} for i in range(7)], owner="alice")
    other = app.submit("echo", [{"n": i} for i in range(5)], owner="bob")

    assert _claim_all(app, chunk=4) == 15  # alice's 10 (never more), bob's 5
    a, b, c = (app.store.jobs.get_job(j.id) for j in (first, second, other))
    assert a.succeeded + b.succeeded == 10 and c.succeeded == 5 and c.status == "finalizing"
    for job in (a, b):
        assert job.status == "paused" and job.status_reason == "quota_exhausted", job
        message = job.status_message or ""
        assert "10 of 10" in message and "batchyard quotas set alice --items" in message
        paused = [e for e in app.store.jobs.list_events(job.id) if e.type == "paused"]
        assert paused and paused[-1].actor == "quota" and paused[-1].data["reason"] == "quota_exhausted"
        assert_counters_match_items(app, job.id)
    assert app.store.claims.claim_items("w1", {"echo": 4}, 30) is None
    assert _quota_pauses("items") - pauses_before == 2  # /metrics: batchyard_quota_pauses_total{budget="items"}

    resumed = app.store.quotas.put(QuotaLimits("alice", items=14, period="total"), actor="admin")
    assert sorted(resumed) == sorted([first.id, second.id])
    for job_id in (first.id, second.id):
        record = app.store.jobs.get_job(job_id)
        assert record.status == "running" and record.status_reason is None
        assert app.store.jobs.list_events(job_id)[-1].type == "resumed"
    assert _claim_all(app, chunk=3) == 4  # exactly up to the new limit
    a, b = (app.store.jobs.get_job(j.id) for j in (first, second))
    assert a.succeeded + b.succeeded == 14 and {a.status, b.status} <= {"paused", "finalizing"}


def test_a_person_s_pause_is_not_undone_by_a_top_up(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", items=2), actor="admin")
    job = app.submit("echo", [{"n": i} for i in range(6)], owner="alice")
    held = app.submit("echo", [{"n": i} for i in range(6)], owner="alice")
    app.store.jobs.pause_job(held.id, actor="alice", reason="hold on")
    assert _claim_all(app) == 2
    assert app.store.jobs.get_job(job.id).status_reason == "quota_exhausted"
    app.store.quotas.put(QuotaLimits("alice", items=100), actor="admin")
    assert app.store.jobs.get_job(job.id).status == "running"
    kept = app.store.jobs.get_job(held.id)
    assert (kept.status, kept.status_reason, kept.status_message) == ("paused", "paused_by_user", "hold on")


def test_a_period_rollover_resumes(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", items=3, period="day"), actor="admin")
    job = app.submit("echo", [{"n": i} for i in range(5)], owner="alice")
    assert _claim_all(app) == 3
    assert app.store.jobs.get_job(job.id).status_reason == "quota_exhausted"
    assert app.store.quotas.resume_due() == []  # same day: nothing to resume
    # Yesterday: the usage so far belongs to the day before, as if the clock had passed midnight.
    today = period_key("day", time.time())
    with app.store.db.write() as conn:
        conn.execute(update(quota_usage).where(quota_usage.c.period_key == today).values(period_key="d:2000-01-01"))
    assert app.store.quotas.resume_due() == [job.id]
    assert app.store.jobs.list_events(job.id)[-1].message == "quota has room again: a new quota period began"
    assert _claim_all(app) == 2
    assert app.store.jobs.get_job(job.id).status == "finalizing"


def test_max_running_caps_an_owner_without_pausing(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", max_running=3), actor="admin")
    job = app.submit("echo", [{"n": i} for i in range(10)], owner="alice", priority=5)
    other = app.submit("echo", [{"n": i} for i in range(4)], owner="bob")
    first = app.store.claims.claim_items("w1", {"echo": 8}, 30)
    assert first is not None and first.job.id == job.id and len(first.items) == 3
    second = app.store.claims.claim_items("w1", {"echo": 8}, 30)  # alice is full: bob's job is claimed instead
    assert second is not None and second.job.id == other.id and len(second.items) == 4
    assert app.store.claims.claim_items("w1", {"echo": 8}, 30) is None
    assert app.store.jobs.get_job(job.id).status == "running"
    _finish(app, first)
    third = app.store.claims.claim_items("w1", {"echo": 8}, 30)
    assert third is not None and third.job.id == job.id and len(third.items) == 3


def test_token_and_cost_budgets_stop_new_claims_once_spent(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", tokens=100), actor="admin")
    job = app.submit("echo", [{"n": i} for i in range(10)], owner="alice")
    batch = app.store.claims.claim_items("w1", {"echo": 4}, 30)
    assert batch is not None and len(batch.items) == 4
    _finish(app, batch, usage={"input_tokens": 20, "output_tokens": 10, "cached_tokens": 5})  # 30 tokens each
    assert app.store.claims.claim_items("w1", {"echo": 4}, 30) is None  # 120 of 100 spent: overshoot <= in flight
    record = app.store.jobs.get_job(job.id)
    assert record.status_reason == "quota_exhausted" and "120 of 100" in (record.status_message or "")

    app.store.quotas.put(QuotaLimits("bob", cost=1.0, period="month"), actor="admin")
    paid = app.submit("echo", [{"n": i} for i in range(10)], owner="bob")
    batch = app.store.claims.claim_items("w1", {"echo": 5}, 30)
    assert batch is not None and batch.job.id == paid.id
    _finish(app, batch, cost=0.25)
    assert app.store.claims.claim_items("w1", {"echo": 5}, 30) is None
    message = app.store.jobs.get_job(paid.id).status_message or ""
    assert "1.25 of 1" in message and "resumes by itself" in message


def test_project_quota_holds_back_its_project_only(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", project="p1", items=2), actor="admin")
    limited = app.submit("echo", [{"n": i} for i in range(5)], owner="alice", project="p1")
    free = app.submit("echo", [{"n": i} for i in range(5)], owner="alice")
    elsewhere = app.submit("echo", [{"n": i} for i in range(5)], owner="alice", project="p2")
    assert _claim_all(app) == 12
    assert app.store.jobs.get_job(limited.id).status_reason == "quota_exhausted"
    assert app.store.jobs.get_job(free.id).status == "finalizing"
    assert app.store.jobs.get_job(elsewhere.id).status == "finalizing"


def test_a_rerun_of_unstarted_items_counts_them_once(app: Batchyard) -> None:
    job = app.submit("echo", [{"n": i} for i in range(6)], owner="alice")
    batch = app.store.claims.claim_items("w1", {"echo": 2}, 30)
    assert batch is not None
    app.store.jobs.cancel_job(job.id)
    _finish(app, batch)
    app.store.quotas.put(QuotaLimits("alice", items=3), actor="admin")
    app.store.jobs.retry_items(job.id)  # a rerun: the 4 cancelled, never started items queue again
    assert _claim_all(app) == 3
    record = app.store.jobs.get_job(job.id)
    assert record.status_reason == "quota_exhausted" and record.succeeded == 5


def test_a_person_pausing_a_quota_paused_job_takes_it_over(app: Batchyard) -> None:
    app.store.quotas.put(QuotaLimits("alice", items=1), actor="admin")
    job = app.submit("echo", [{"n": i} for i in range(3)], owner="alice")
    assert _claim_all(app) == 1
    app.store.jobs.pause_job(job.id, actor="alice", reason="checking the first result")
    record = app.store.jobs.get_job(job.id)
    assert (record.status_reason, record.status_message) == ("paused_by_user", "checking the first result")
    assert app.store.quotas.put(QuotaLimits("alice", items=10), actor="admin") == []
    assert app.store.jobs.get_job(job.id).status == "paused"


def test_two_workers_claiming_at_once_never_pass_the_item_budget(app: Batchyard) -> None:
    """Several jobs of one owner, two workers claiming in parallel (PostgreSQL: two connections racing for the
    same budget): exactly the budget runs, and every job ends up paused for quota or done."""
    from batchyard.app import InProcessWorker

    from ..waits import wait_until

    app.store.quotas.put(QuotaLimits("alice", items=137, period="day"), actor="admin")
    jobs = [app.submit("echo", [{"n": i} for i in range(60)], owner="alice") for _ in range(4)]
    workers = [InProcessWorker(app, handlers=["echo"]) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:

        def settled() -> bool:
            records = [app.store.jobs.get_job(j.id) for j in jobs]
            return all(r.running == 0 for r in records) and sum(r.succeeded for r in records) >= 137

        wait_until(settled, timeout=60, what="the budget to be spent")
        time.sleep(0.3)  # a claim past the budget would start within this
        records = [app.store.jobs.get_job(j.id) for j in jobs]
    finally:
        for worker in workers:
            worker.stop()
    assert sum(r.succeeded for r in records) == 137
    assert all(r.status == "paused" and r.status_reason == "quota_exhausted" for r in records if r.queued)
    assert app.store.quotas.status(QuotaLimits("alice", items=137, period="day"))[0].items == 137
