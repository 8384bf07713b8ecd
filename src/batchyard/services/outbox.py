"""The notification dispatcher: sends what the outbox holds, in every worker process (``serve`` runs one too).

Each round claims due messages (``store/outbox.py``: a lease, so several processes share the work safely) and
sends them concurrently on the worker's event loop: webhooks as signed POSTs with aiohttp (``outbound/webhook.py``,
the address guard on every hop, a timeout), emails through ``batchyard.notify.email`` in a thread. Database calls
run in threads too, so a slow receiver or database never holds up the worker's items.

A 2xx delivers a webhook; anything else, a network error or a refused address is tried again on the retry
schedule (``BATCHYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS``, see :mod:`batchyard.core.notifications`), and given up
(``gave_up``) after its last step. The body is made at the first attempt (the job as the API shows it then) and
kept, so every retry and redelivery sends the same bytes under the same ``webhook-id``.

Payloads: ``{"type", "timestamp", "data"}``. ``data`` is the job as ``GET /api/v1/jobs/{id}`` shows it for
``job.*`` events, and the batch as ``GET /v1/batches/{id}`` shows it for ``batch.*`` events; ``timestamp`` is when
the event happened (ISO 8601, UTC).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from batchyard import metrics
from batchyard.core.notifications import iso_timestamp, retry_delay, signed_headers
from batchyard.core.records import OutboxMessage
from batchyard.errors import EmailDeliveryError, NotFound
from batchyard.outbound.webhook import Attempt, post_signed

if TYPE_CHECKING:
    from batchyard.services.jobs import JobService
    from batchyard.services.openai_batches import OpenAIBatchService
    from batchyard.settings import Settings
    from batchyard.store import Store

log = logging.getLogger("batchyard.outbox")

CLAIM_BATCH = 20
DELIVERED, FAILED, GAVE_UP = "delivered", "failed", "gave_up"


class OutboxDispatcher:
    """Delivers due messages (only those of ``job_ids``, for a worker limited to some jobs)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        jobs: JobService,
        batches: OpenAIBatchService,
        *,
        job_ids: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.jobs = jobs
        self.batches = batches
        self.job_ids = None if job_ids is None else list(job_ids)

    async def deliver_due(self) -> int:
        """One round: claim what is due and send it; returns how many messages were tried."""
        messages = await asyncio.to_thread(
            self.store.outbox.claim_due, CLAIM_BATCH, self.settings.outbox_lease_seconds, job_ids=self.job_ids
        )
        if messages:
            await asyncio.gather(*(self._deliver(m) for m in messages))
        return len(messages)

    async def drain(self, seconds: float) -> bool:
        """Deliver this worker's jobs' messages for up to ``seconds`` (retries due in that time included); True
        once none is pending. For a worker limited to some jobs (``submit --wait``) before it exits."""
        if self.job_ids is None:
            return True
        deadline = time.monotonic() + seconds
        poll = self.settings.outbox_poll_interval_ms / 1000.0
        while True:
            await self.deliver_due()
            pending = await asyncio.to_thread(self._pending_count)
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return not pending
            await asyncio.sleep(min(poll, left))

    def _pending_count(self) -> int:
        assert self.job_ids is not None
        return sum(1 for m in self.store.outbox.messages_of_jobs(self.job_ids) if m.status == "pending")

    # -- one message ------------------------------------------------------------------------------------------

    async def _deliver(self, message: OutboxMessage) -> None:
        payload = message.payload
        try:
            if payload is None:
                payload = await asyncio.to_thread(self.payload, message)
            if message.kind == "email":
                attempt, retryable = await self._email(message)
            else:
                attempt, retryable = await self._webhook(message, payload), True
        except Exception as exc:  # a bug or a broken database row: logged loudly, retried like a failed send
            log.exception(
                "notification %s (%s of job %s) failed to send", message.id, message.event_type, message.job_id
            )
            attempt, retryable = Attempt(None, f"internal error: {type(exc).__name__}: {exc}"[:500], 0.0), True
        await self._settle(message, attempt, payload, retryable=retryable)

    async def _webhook(self, message: OutboxMessage, payload: str) -> Attempt:
        if not message.url or not message.secret:
            return Attempt(None, "no URL or secret for this message", 0.0)
        body = payload.encode()
        headers = signed_headers(message.secret, message.id, int(time.time()), body)
        headers["user-agent"] = "Batchyard-Webhooks"
        return await post_signed(
            message.url,
            body,
            headers,
            allow_private=self.settings.allow_private_urls,
            allowed_networks=self.settings.allowed_private_networks,
            timeout_seconds=self.settings.webhook_timeout_seconds,
        )

    async def _email(self, message: OutboxMessage) -> tuple[Attempt, bool]:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._send_email, message)
        except EmailDeliveryError as exc:  # retryable: unreachable, timed out, a 4xx; else final (a 5xx, no SMTP)
            return Attempt(exc.smtp_code, str(exc)[:500], _ms(started)), exc.retryable
        return Attempt(250, None, _ms(started)), True  # 250: SMTP's "accepted", for the log

    def _send_email(self, message: OutboxMessage) -> None:
        from batchyard.notify.email import compose_job_email, send_email

        job = self.jobs.get(message.job_id).to_dict()
        send_email(compose_job_email(job, public_url=self.settings.public_url), self.settings)

    async def _settle(self, message: OutboxMessage, attempt: Attempt, payload: str | None, *, retryable: bool) -> None:
        delivered = attempt.delivered if message.kind == "webhook" else attempt.error is None
        retry_in = None
        if delivered:
            outcome = DELIVERED
        else:
            retry_in = retry_delay(message.tries + 1, self.settings.webhook_retry_schedule_seconds, random.random())
            outcome = FAILED if retryable and retry_in is not None else GAVE_UP
        settled = await asyncio.to_thread(
            self.store.outbox.settle,
            message,
            outcome,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            payload=payload,
            retry_in=retry_in,
        )
        if not settled:  # its lease ran out meanwhile: whoever holds it now records the attempt it makes
            log.warning("notification %s: lease lost before its attempt was recorded", message.id)
            return
        if message.kind == "email":
            metrics.record_email_delivery(outcome)
        else:
            metrics.record_webhook_delivery(outcome)
        if outcome == GAVE_UP:
            log.warning(
                "notification %s (%s of job %s) given up after %d attempts: %s",
                message.id,
                message.event_type,
                message.job_id,
                message.tries + 1,
                attempt.error,
            )

    # -- payloads -----------------------------------------------------------------------------------------------

    def payload(self, message: OutboxMessage) -> str:
        """The message's JSON body: the event, when it happened, and the job (or batch) as the API shows it."""
        data: dict[str, Any]
        try:
            job = self.jobs.job_record(message.job_id)
            if message.event_type.startswith("batch."):
                data = self.batches.batch_of(job).model_dump(mode="json")
            else:
                data = self.jobs.view(job).to_dict()
        except NotFound:  # deleted before its first attempt: what is left to say
            data = {"id": message.job_id, "deleted": True}
        body = {"type": message.event_type, "timestamp": iso_timestamp(message.occurred_at), "data": data}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
