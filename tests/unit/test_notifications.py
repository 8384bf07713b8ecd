"""Notification rules (core/notifications.py): event names, Standard Webhooks signatures, the retry schedule."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from batchyard.core.notifications import (
    DEFAULT_RETRY_SCHEDULE_SECONDS,
    EVENT_TYPES,
    JITTER,
    event_type,
    iso_timestamp,
    new_message_id,
    new_secret,
    retry_delay,
    schedule_span,
    signed_headers,
    subscribed,
    unknown_events,
)
from batchyard.errors import InvalidRequest
from batchyard.services.webhooks import check_events, check_notify_emails
from batchyard.settings import Settings


@pytest.mark.parametrize(
    ("timeline", "is_batch", "expected"),
    [
        ("completed", False, "job.completed"),
        ("failed", False, "job.failed"),
        ("cancelled", False, "job.cancelled"),
        ("paused", False, "job.paused"),
        ("expired", False, "job.expired"),
        ("completed", True, "batch.completed"),
        ("failed", True, "batch.failed"),
        ("cancelled", True, "batch.cancelled"),
        ("expired", True, "batch.expired"),
        ("paused", True, "job.paused"),  # a batch has no paused status of its own
        ("created", False, None),
        ("started", False, None),
        ("resumed", False, None),
        ("cancelling", False, None),
        ("finalizing", True, None),
        ("rescued", False, None),
    ],
)
def test_which_timeline_events_notify(timeline: str, is_batch: bool, expected: str | None) -> None:
    assert event_type(timeline, is_batch=is_batch) == expected


def test_an_empty_subscription_means_every_event() -> None:
    assert all(subscribed([], e) for e in EVENT_TYPES)
    assert subscribed(["job.failed"], "job.failed") and not subscribed(["job.failed"], "job.completed")
    assert unknown_events(["job.completed", "job.done", "batch.failed"]) == ["job.done"]


def test_a_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "job.completed", "timestamp": "2026-12-01T10:00:00.000Z", "data": {"id": "job_1"}})
    import time

    now = int(time.time())
    headers = signed_headers(secret, new_message_id(), now, body.encode())
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):  # another secret, or a changed body, does not verify
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("job_1", "job_2"), headers)


def test_the_default_schedule_retries_within_10_seconds_and_for_more_than_a_day() -> None:
    schedule = DEFAULT_RETRY_SCHEDULE_SECONDS
    first = [retry_delay(1, schedule, r) for r in (0.0, 0.5, 0.999999)]
    assert all(d is not None and d < 10 for d in first)
    assert schedule_span(schedule) >= 24 * 3600
    # without jitter the exact waits: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then give up (8 attempts)
    assert [retry_delay(n, schedule, 0.5) for n in range(1, 8)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert retry_delay(8, schedule, 0.5) is None
    assert retry_delay(0, schedule, 0.5) is None


def test_the_schedule_is_the_settings_default() -> None:
    assert tuple(Settings().webhook_retry_schedule_seconds) == DEFAULT_RETRY_SCHEDULE_SECONDS


@given(st.integers(min_value=1, max_value=7), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_jitter_stays_within_its_bounds(tries: int, rand: float) -> None:
    step = DEFAULT_RETRY_SCHEDULE_SECONDS[tries - 1]
    delay = retry_delay(tries, DEFAULT_RETRY_SCHEDULE_SECONDS, rand)
    assert delay is not None
    assert step * (1 - JITTER) - 1e-9 <= delay <= step * (1 + JITTER) + 1e-9


def test_a_payload_timestamp_is_iso_8601_utc() -> None:
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert iso_timestamp(1764583200.25) == "2025-12-01T10:00:00.250Z"


def test_unknown_event_names_are_refused_clearly() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_events(["job.completed", "job.finished"])
    assert caught.value.param == "events" and "job.finished" in caught.value.message
    assert check_events(None) == [] and check_events(["job.failed", "job.failed"]) == ["job.failed"]


@pytest.mark.parametrize("bad", ["not-an-address", "a@b", "two@a.com,three@b.com", "Ann <ann@example.com>", " @x.io"])
def test_notify_emails_must_be_plain_addresses(bad: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_notify_emails(["ok@example.com", bad])
    assert caught.value.param == "notify_emails"


def test_notify_emails_are_bounded_and_deduplicated() -> None:
    assert check_notify_emails(["a@example.com", " a@example.com ", "b@example.org"]) == (
        "a@example.com",
        "b@example.org",
    )
    with pytest.raises(InvalidRequest):
        check_notify_emails([f"u{i}@example.com" for i in range(21)])
