"""The rules of notifications (webhooks and emails), pure: which event a timeline entry is, how a webhook is
signed, when a failed delivery is tried again.

**Events.** A job's timeline event (``store/timeline.py``) that ends or pauses it becomes a notification event:
``completed``, ``failed``, ``cancelled``, ``paused`` and ``expired`` are ``job.<that>``; for a job created
through ``/v1/batches`` (an OpenAI batch) the four terminal ones are ``batch.<that>`` instead (OpenAI's own event
names) and a pause stays ``job.paused`` (a batch has no paused status).

**Signatures** follow the Standard Webhooks specification: headers ``webhook-id`` (the message id, the same on
every retry and redelivery), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
``v1,`` + base64 of HMAC-SHA256 over ``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded part of the
secret after ``whsec_``. The ``standardwebhooks`` package (and Svix's libraries) verify them.

**Retries.** A delivery that does not get a 2xx is tried again after the next step of the schedule (each step
varied by +-:data:`JITTER` so that many failed deliveries do not come back at the same moment), and given up
(``gave_up``) once the schedule is used up. The default schedule is Standard Webhooks'/Svix's: 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 10 h after each failure: 8 attempts over about 27.6 hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

JOB_EVENT_TYPES = ("job.completed", "job.failed", "job.cancelled", "job.paused", "job.expired")
BATCH_EVENT_TYPES = ("batch.completed", "batch.failed", "batch.cancelled", "batch.expired")
EVENT_TYPES = JOB_EVENT_TYPES + BATCH_EVENT_TYPES

# Timeline event types that notify, and the ones that finish a job (an email goes out for those).
NOTIFYING_TIMELINE_EVENTS = frozenset({"completed", "failed", "cancelled", "paused", "expired"})
FINISHING_TIMELINE_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MESSAGE_PREFIX = "msg_"
WEBHOOK_PREFIX = "wh_"

DEFAULT_RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.2  # each wait is its step times a factor in [1 - JITTER, 1 + JITTER]


def event_type(timeline_type: str, *, is_batch: bool) -> str | None:
    """The notification event of a timeline event (``completed`` -> ``job.completed``), or None if it notifies
    nobody. An OpenAI batch's terminal events are ``batch.*``."""
    if timeline_type not in NOTIFYING_TIMELINE_EVENTS:
        return None
    if is_batch and timeline_type in FINISHING_TIMELINE_EVENTS:
        return f"batch.{timeline_type}"
    return f"job.{timeline_type}"


def subscribed(events: Sequence[str], event: str) -> bool:
    """Whether an endpoint listening to ``events`` gets ``event``: an empty list means every event."""
    return not events or event in events


def unknown_events(events: Iterable[str]) -> list[str]:
    """The names in ``events`` that are no event type (for a clear 400)."""
    return [e for e in events if e not in EVENT_TYPES]


def new_secret() -> str:
    """A signing secret: ``whsec_`` + base64 of 32 random bytes (the form Standard Webhooks libraries take)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    return MESSAGE_PREFIX + secrets.token_hex(12)


def new_webhook_id() -> str:
    return WEBHOOK_PREFIX + secrets.token_hex(8)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt (the body is JSON)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }


def retry_delay(tries: int, schedule: Sequence[float], rand: float) -> float | None:
    """Seconds to wait before the next attempt after ``tries`` failed ones (1 after the first failure), or None:
    the schedule is used up, give up. ``rand`` in [0, 1) picks the jitter (``random.random()``)."""
    if tries < 1 or tries > len(schedule):
        return None
    step = schedule[tries - 1]
    return max(0.0, step * (1.0 + JITTER * (2.0 * rand - 1.0)))


def schedule_span(schedule: Sequence[float]) -> float:
    """How long after the first attempt the last one comes (without jitter): how long a delivery is tried."""
    return float(sum(schedule))


def iso_timestamp(epoch_seconds: float) -> str:
    """A payload's ``timestamp``: when the event happened, ISO 8601 in UTC (as Standard Webhooks suggests)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
