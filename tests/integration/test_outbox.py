"""The notification outbox on SQLite and PostgreSQL: messages written with the events every path records, claimed
with leases, delivered to a real receiver on loopback with retries, signed as Standard Webhooks says, refused for
private targets, and still delivered after a restart."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from batchyard import Batchyard, ItemContext, Settings
from batchyard.core.lifecycle import Action
from batchyard.errors import PauseJob
from batchyard.metrics import REGISTRY
from batchyard.services.auth import Principal, Role
from batchyard.services.maintenance import Maintenance
from batchyard.services.outbox import OutboxDispatcher

from ..receiver import Received, run_receiver
from ..smtp import SmtpServer
from ..waits import wait_until
from .helpers import running_worker, wait_finished

ALICE = Principal("alice", Role.MEMBER)
FAST = {"allow_private_urls": True, "webhook_retry_schedule_seconds": [0.3, 0.3, 0.3], "outbox_poll_interval_ms": 50}


@pytest.fixture
def fast_app(settings: Settings) -> Iterator[Batchyard]:
    application = Batchyard(settings.model_copy(update=FAST), demo_handlers=True)
    yield application
    application.close()


def _write_files(app: Batchyard) -> None:
    """One maintenance round: stopped jobs get their result files, and their held messages come due."""
    maintenance = Maintenance(app.store, app.storage, app.settings)
    while app.store.upkeep.jobs_needing_files():  # ten jobs a round
        maintenance.run_once()


def _dispatcher(app: Batchyard, **changes: Any) -> OutboxDispatcher:
    settings = app.settings.model_copy(update=changes)
    return OutboxDispatcher(app.store, settings, app.service, app.openai_batches)


def _deliveries(app: Batchyard, webhook_id: str) -> list[Any]:
    return app.webhooks.deliveries(webhook_id, ALICE, limit=100)[0]


def _counter(name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(f"batchyard_{name}_deliveries_total", {"outcome": outcome}) or 0.0


def _verify(secret: str, request: Received) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


def test_every_path_that_ends_or_pauses_a_job_writes_its_messages(fast_app: Batchyard) -> None:
    app = fast_app
    everything, _ = app.webhooks.create(ALICE, url="https://hooks.example.com/all")
    failures, _ = app.webhooks.create(ALICE, url="https://hooks.example.com/failed", events=["job.failed"])

    cancelled = app.service.submit("echo", [{"n": 1}], owner="alice")
    app.service.cancel(cancelled.id)  # a person's cancel (the API and the CLI)
    paused = app.service.submit("echo", [{"n": 1}], owner="alice")
    app.service.pause(paused.id)
    expired = app.service.submit("echo", [{"n": 1}], owner="alice")
    assert app.store.jobs.stop_job(expired.id, Action.EXPIRE, {"code": "expired", "message": "window passed"})
    failed = app.service.submit("echo", [{"n": 1}], owner="alice")
    assert app.store.jobs.stop_job(failed.id, Action.FAIL, {"code": "failure_threshold", "message": "too many"})
    others = app.service.submit("echo", [{"n": 1}], owner="bob")
    app.service.cancel(others.id)

    def events(job_id: str) -> set[tuple[str, str | None]]:
        return {(m.event_type, m.webhook_id) for m in app.store.outbox.messages_of_jobs([job_id])}

    assert events(cancelled.id) == {("job.cancelled", everything.id)}
    assert events(paused.id) == {("job.paused", everything.id)}
    assert events(expired.id) == {("job.expired", everything.id)}
    assert events(failed.id) == {("job.failed", everything.id), ("job.failed", failures.id)}
    assert events(others.id) == set()  # bob's job: nothing for alice's endpoints
    # a stopped job's messages wait for its result files (what they carry is the finished job); a pause's do not
    stopped = [cancelled.id, expired.id, failed.id]
    assert {m.next_attempt_at for m in app.store.outbox.messages_of_jobs(stopped)} == {None}
    assert all(m.next_attempt_at is not None for m in app.store.outbox.messages_of_jobs([paused.id]))
    _write_files(app)
    assert all(m.next_attempt_at is not None for m in app.store.outbox.messages_of_jobs(stopped))


def test_a_worker_finishing_or_a_handler_pausing_writes_messages(fast_app: Batchyard) -> None:
    app = fast_app

    def stops(item: dict[str, int], ctx: ItemContext) -> dict[str, int]:
        raise PauseJob("out of tokens")

    app.registry.register("stops", stops)
    with run_receiver() as receiver:
        hook, secret = app.webhooks.create(ALICE, url=receiver.url)
        done = app.service.submit("echo", [{"n": 1}, {"n": 2}], owner="alice")
        halted = app.service.submit("stops", [{"n": 1}], owner="alice")
        with running_worker(app):
            wait_finished(app, done.id)
            wait_until(lambda: app.service.get(halted.id).job.status == "paused", what="the handler's pause")
            receiver.wait_for(2)
        kinds = {(r.json["type"], r.json["data"]["id"]) for r in receiver.requests}
        assert kinds == {("job.completed", done.id), ("job.paused", halted.id)}
        completed = receiver.of_type("job.completed")[0]
        assert _verify(secret, completed)["data"]["status"] == "completed"
        assert completed.json["data"]["counts"]["succeeded"] == 2
        paused = receiver.of_type("job.paused")[0].json["data"]
        assert (paused["status_reason"], paused["status_message"]) == ("paused_by_handler", "out of tokens")
        assert {d.event_type for d in _deliveries(app, hook.id)} == {"job.completed", "job.paused"}


def test_a_receiver_that_fails_twice_gets_three_attempts_under_one_webhook_id(fast_app: Batchyard) -> None:
    app = fast_app
    before = {o: _counter("webhook", o) for o in ("delivered", "failed")}
    with run_receiver([500, 503]) as receiver:
        hook, secret = app.webhooks.create(ALICE, url=receiver.url, events=["job.completed"])
        job = app.service.submit("echo", [{"n": 1}], owner="alice")
        with running_worker(app):
            wait_finished(app, job.id)
            requests = receiver.wait_for(3)
        assert len(requests) == 3
        assert len({r.headers["webhook-id"] for r in requests}) == 1  # stable across retries
        assert len({r.body for r in requests}) == 1  # the same bytes every time
        for request in requests:
            assert _verify(secret, request)["type"] == "job.completed"
        assert requests[1].at - requests[0].at < 10  # the first retry comes within 10 s
    log = _deliveries(app, hook.id)
    assert [(d.outcome, d.status_code) for d in log] == [("delivered", 200), ("failed", 503), ("failed", 500)]
    assert log[2].error == "answered HTTP 500" and log[0].error is None
    assert {d.message_id for d in log} == {requests[0].headers["webhook-id"]}
    assert all(d.message_status == "delivered" and d.duration_ms >= 0 for d in log)
    assert _counter("webhook", "delivered") - before["delivered"] == 1
    assert _counter("webhook", "failed") - before["failed"] == 2


def test_after_the_schedule_it_gives_up_and_a_redelivery_sends_it_again(fast_app: Batchyard) -> None:
    app = fast_app
    with run_receiver([500] * 4) as receiver:
        hook, secret = app.webhooks.create(ALICE, url=receiver.url)
        job = app.service.submit("echo", [{"n": 1}], owner="alice")
        app.service.cancel(job.id)
        with running_worker(app):
            receiver.wait_for(4)
            wait_until(lambda: _deliveries(app, hook.id)[0].outcome == "gave_up", what="giving up")
            log = _deliveries(app, hook.id)
            assert [d.outcome for d in log] == ["gave_up", "failed", "failed", "failed"]
            message = app.webhooks.redeliver(hook.id, str(log[0].id), ALICE)
            assert message.status == "pending"
            requests = receiver.wait_for(5)
        assert requests[4].headers["webhook-id"] == requests[0].headers["webhook-id"]
        assert requests[4].body == requests[0].body
        cancelled = _verify(secret, requests[4])
        assert cancelled["type"] == "job.cancelled"
        assert cancelled["data"]["finished"] is True and cancelled["data"]["status"] == "cancelled"
    assert _deliveries(app, hook.id)[0].outcome == "delivered"


def test_a_pending_message_survives_a_restart(settings: Settings) -> None:
    """Written by one process that stops before sending it; the next process (same database) delivers it. A
    message claimed by a process that died mid-send comes back when its lease runs out."""
    first = Batchyard(settings.model_copy(update={**FAST, "outbox_lease_seconds": 0.5}), demo_handlers=True)
    with run_receiver() as receiver:
        _, secret = first.webhooks.create(ALICE, url=receiver.url)
        job = first.service.submit("echo", [{"n": 1}], owner="alice")
        first.service.cancel(job.id)
        other = first.service.submit("echo", [{"n": 1}], owner="alice")
        first.service.cancel(other.id)
        _write_files(first)
        claimed = first.store.outbox.claim_due(1, 0.5)  # then the process "dies" holding it
        assert len(claimed) == 1
        first.close()
        second = Batchyard(settings.model_copy(update=FAST), demo_handlers=True)
        try:
            with running_worker(second):
                requests = receiver.wait_for(2)
            assert {r.json["data"]["id"] for r in requests} == {job.id, other.id}
            assert all(_verify(secret, r) for r in requests)
            assert [m.status for m in second.store.outbox.messages_of_jobs([job.id, other.id])] == ["delivered"] * 2
        finally:
            second.close()


def test_claims_never_overlap_and_a_lost_lease_records_nothing(fast_app: Batchyard) -> None:
    app = fast_app
    app.webhooks.create(ALICE, url="https://hooks.example.com/a")
    for _ in range(12):
        job = app.service.submit("echo", [{"n": 1}], owner="alice")
        app.service.cancel(job.id)
    _write_files(app)
    taken: list[list[str]] = []
    lock = threading.Lock()

    def claim() -> None:
        got = [m.id for m in app.store.outbox.claim_due(5, 60.0)]
        with lock:
            taken.append(got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in taken for i in batch]
    assert len(ids) == len(set(ids)) == 12  # every message once, whoever claimed it
    assert app.store.outbox.claim_due(5, 60.0) == []  # all held
    # a claim of a message whose lease ran out takes it over: the first holder's result is not recorded
    assert app.store.outbox.redeliver(ids[0])  # due again now, lease cleared
    first = app.store.outbox.claim_due(1, 0.0)[0]
    second = app.store.outbox.claim_due(1, 60.0)[0]
    assert first.id == second.id == ids[0] and first.lease_token != second.lease_token
    assert not app.store.outbox.settle(first, "delivered", duration_ms=1.0, status_code=200)
    assert app.store.outbox.settle(second, "delivered", duration_ms=1.0, status_code=200)


def test_a_jobs_own_webhook_url_is_signed_with_the_owners_default_secret(fast_app: Batchyard) -> None:
    app = fast_app
    with run_receiver() as receiver:
        job = app.submit("echo", [{"n": 1}], owner="alice", webhook_url=receiver.url + "?job=1")
        assert app.service.get(job.id).to_dict()["webhook_url"] == receiver.url + "?job=1"
        unrelated = app.submit("echo", [{"n": 2}], owner="alice")
        with running_worker(app):
            wait_finished(app, job.id)
            wait_finished(app, unrelated.id)
            requests = receiver.wait_for(1)
        owner, secret = app.webhooks.default_secret(ALICE)
        assert owner == "alice" and secret.startswith("whsec_")
        assert len(requests) == 1 and requests[0].path == "/hook?job=1"
        payload = _verify(secret, requests[0])
        assert payload["type"] == "job.completed" and payload["data"]["id"] == job.id
        with pytest.raises(WebhookVerificationError):
            _verify(app.webhooks.default_secret(Principal("bob", Role.MEMBER))[1], requests[0])
        assert app.webhooks.default_secret(ALICE)[1] == secret  # made once, the same after


def test_delivery_checks_the_address_again_and_on_every_redirect(fast_app: Batchyard) -> None:
    """An endpoint made while private targets were allowed is refused at delivery once they are not (0 requests
    reach it); a redirect to an address the policy refuses is not followed; cloud metadata stays refused even when
    private targets are allowed."""
    app = fast_app
    with run_receiver() as inside, run_receiver(redirect_to="http://169.254.169.254/latest/meta-data/") as to_meta:
        hook, _ = app.webhooks.create(ALICE, url=inside.url)
        metahook, _ = app.webhooks.create(ALICE, url=to_meta.url)
        job = app.service.submit("echo", [{"n": 1}], owner="alice")
        app.service.cancel(job.id)
        _write_files(app)
        strict = _dispatcher(app, allow_private_urls=False)
        assert asyncio.run(strict.deliver_due()) == 2
        assert inside.requests == [] and to_meta.requests == []  # refused before connecting
        refused = _deliveries(app, hook.id)[0]
        assert refused.status_code is None and "refused to connect to 127.0.0.1" in (refused.error or "")
        assert refused.outcome == "failed"
        app.store.outbox.redeliver(_deliveries(app, metahook.id)[0].message_id)
        lenient = _dispatcher(app)  # private targets allowed: the receiver is reached, its redirect is not
        asyncio.run(lenient.deliver_due())
        assert len(to_meta.requests) == 1
        followed = _deliveries(app, metahook.id)[0]
        assert "169.254.169.254" in (followed.error or "") and "refused always" in (followed.error or "")


def test_a_redirect_into_a_refused_network_is_not_followed(fast_app: Batchyard) -> None:
    """127.0.0.1 is allowed by ``allowed_private_networks``; its 302 points at 127.0.0.2, which is not: the
    second receiver gets no connection at all."""
    app = fast_app
    with run_receiver(host="127.0.0.2") as target, run_receiver(redirect_to=target.url) as front:
        if True:
            hook, _ = app.webhooks.create(ALICE, url=front.url)
            job = app.service.submit("echo", [{"n": 1}], owner="alice")
            app.service.cancel(job.id)
            _write_files(app)
            guarded = _dispatcher(app, allow_private_urls=False, allowed_private_networks=["127.0.0.1/32"])
            asyncio.run(guarded.deliver_due())
            assert len(front.requests) == 1 and target.requests == []
            attempt = _deliveries(app, hook.id)[0]
            assert "127.0.0.2" in (attempt.error or "") and attempt.outcome == "failed"


def test_wait_with_its_own_worker_sends_the_jobs_messages_before_it_returns(fast_app: Batchyard) -> None:
    """``Job.wait()`` (and ``submit --wait``) with no worker running processes the job in this process; the job's
    notifications go out before it returns, even one that needs a retry."""
    app = fast_app
    with run_receiver([502]) as endpoint, run_receiver() as own:
        hook, _ = app.webhooks.create(ALICE, url=endpoint.url, events=["job.completed"])
        job = app.submit("echo", [{"n": 1}], owner="alice", webhook_url=own.url)
        job.wait(timeout=30)
        assert [r.json["type"] for r in endpoint.requests] == ["job.completed"] * 2  # the 502, then its retry
        assert [r.json["data"]["id"] for r in own.requests] == [job.id]
    assert [d.outcome for d in _deliveries(app, hook.id)] == ["delivered", "failed"]
    assert {m.status for m in app.store.outbox.messages_of_jobs([job.id])} == {"delivered"}


def _emails(app: Batchyard, job_id: str) -> list[Any]:
    return [m for m in app.store.outbox.messages_of_jobs([job_id]) if m.kind == "email"]


def test_a_finished_job_with_notify_emails_sends_one_email(fast_app: Batchyard, smtp_server: SmtpServer) -> None:
    """Through the outbox and the email module, to a real SMTP server: one email per finished job, to its
    addresses; a failed send that can be retried (a 4xx) is retried, and a pause sends none."""
    smtp = smtp_server.settings().model_dump(include={"smtp_host", "smtp_port", "smtp_tls", "email_from"})
    schedule = {"webhook_retry_schedule_seconds": [1.0] * 5}  # time to see the refusal before the next attempt
    app = Batchyard(fast_app.settings.model_copy(update={**smtp, **schedule}), demo_handlers=True)
    before = _counter("email", "delivered")
    try:
        smtp_server.data_reply = "451 try again later"  # the first attempt is refused for now
        job = app.submit(
            "echo", [{"n": 1}, {"n": 2}], owner="alice", notify_emails=["ops@example.com", "ann@example.org"]
        )
        paused = app.submit("echo", [{"n": 1}], owner="alice", notify_emails=["ops@example.com"])
        app.service.pause(paused.id)
        with running_worker(app):
            wait_finished(app, job.id)
            wait_until(lambda: bool(_emails(app, job.id)) and _emails(app, job.id)[0].tries >= 1, what="a refusal")
            smtp_server.data_reply = None
            received = smtp_server.wait_for_messages(1, timeout=15)
        assert sorted(received[0].rcpt_tos) == ["ann@example.org", "ops@example.com"]
        assert job.id in received[0].message["X-Batchyard-Job-Id"]
        assert [m.status for m in _emails(app, job.id)] == ["delivered"]
        assert _emails(app, paused.id) == []  # a pause is not the end: no email
        assert _counter("email", "delivered") - before == 1
    finally:
        app.close()


def test_an_email_that_cannot_be_sent_at_all_is_given_up_at_once(fast_app: Batchyard) -> None:
    """No SMTP server configured: the email module says the failure is final, so the message is not retried."""
    app = fast_app
    job = app.submit("echo", [{"n": 1}], owner="alice", notify_emails=["ops@example.com"])
    with running_worker(app):
        wait_finished(app, job.id)
        wait_until(lambda: _emails(app, job.id)[0].status == "gave_up", what="the email given up")
    assert _emails(app, job.id)[0].tries == 1


def test_settled_messages_and_their_log_are_pruned_after_a_while(fast_app: Batchyard) -> None:
    app = fast_app
    with run_receiver() as receiver:
        hook, _ = app.webhooks.create(ALICE, url=receiver.url)
        job = app.service.submit("echo", [{"n": 1}], owner="alice")
        app.service.pause(job.id)
        asyncio.run(_dispatcher(app).deliver_due())
    assert len(_deliveries(app, hook.id)) == 1
    assert app.store.outbox.prune_settled(3600.0) == 0  # delivered just now: kept
    pending = app.service.submit("echo", [{"n": 1}], owner="alice")
    app.service.pause(pending.id)  # a message not sent yet is never pruned
    assert app.store.outbox.prune_settled(0.0) == 1
    assert _deliveries(app, hook.id) == [] and app.store.outbox.messages_of_jobs([job.id]) == []
    assert [m.status for m in app.store.outbox.messages_of_jobs([pending.id])] == ["pending"]


def test_a_quota_pause_sends_job_paused_with_its_reason(fast_app: Batchyard) -> None:
    """The quota's pause goes through the same timeline funnel: its job.paused says quota_exhausted."""
    app = fast_app
    app.quotas.set("alice", {"items": 2})
    with run_receiver() as receiver:
        hook, secret = app.webhooks.create(ALICE, url=receiver.url, events=["job.paused"])
        job = app.submit("echo", [{"n": i} for i in range(5)], owner="alice")
        with running_worker(app):
            request = receiver.wait_for(1)[0]
        payload = _verify(secret, request)
    assert (payload["type"], payload["data"]["id"]) == ("job.paused", job.id)
    assert payload["data"]["status_reason"] == "quota_exhausted"
    assert [d.event_type for d in _deliveries(app, hook.id)] == ["job.paused"]


def test_with_the_default_schedule_the_first_retry_comes_within_10_seconds(settings: Settings) -> None:
    """The real schedule (no test override): a receiver that fails once gets the retry 4 to 6 s later, before
    ``Job.wait()``'s own worker exits (its drain waits for it)."""
    app = Batchyard(settings.model_copy(update={"allow_private_urls": True}), demo_handlers=True)
    try:
        with run_receiver([500]) as receiver:
            app.webhooks.create(ALICE, url=receiver.url)
            job = app.submit("echo", [{"n": 1}], owner="alice")
            job.wait(timeout=30)
            first, retry = receiver.requests
        assert 4.0 <= retry.at - first.at < 10.0
        assert retry.headers["webhook-id"] == first.headers["webhook-id"]
    finally:
        app.close()
