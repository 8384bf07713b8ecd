"""Webhook endpoints as their owners manage them, and the checks on every URL a notification may go to.

Who may do what follows the job routes: a member (or admin) adds and deletes its owner's endpoints, a viewer
lists and reads them, an admin sees and manages every owner's (``owner`` names whose). Someone else's endpoint is
reported as missing (404), exactly like a wrong id. The secret is returned once, when the endpoint is made.

**URLs** (an endpoint's, and a job's own ``webhook_url``) are checked when they are given: http or https, with a
host, and if the name resolves now, at least one of its addresses allowed by the outbound policy
(``core/addresses.py``: loopback, private and link-local refused unless ``BATCHYARD_ALLOW_PRIVATE_URLS=true``;
cloud metadata addresses always). A name that does not resolve yet is accepted. Every delivery checks again, after
its own DNS lookup and on every redirect (``outbound/webhook.py``): DNS may change.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batchyard.core.addresses import AddressRefused, check_address
from batchyard.core.notifications import EVENT_TYPES, unknown_events
from batchyard.core.records import DeliveryRecord, MessageRecord, WebhookRecord
from batchyard.errors import InvalidRequest, NotFound
from batchyard.services.auth import LOCAL_ADMIN, Principal, check_owner_name

if TYPE_CHECKING:  # types only: importing them would load the database layer
    from batchyard.settings import Settings
    from batchyard.store import Store

MAX_WEBHOOKS_PER_OWNER = 50
MAX_URL_CHARS = 2000
MAX_NOTIFY_EMAILS = 20
DEFAULT_PAGE = 50
MAX_PAGE = 200


def check_target_url(url: str, settings: Settings, *, param: str) -> str:
    """``url`` if a notification may be sent there now, else InvalidRequest naming ``param``."""
    from batchyard.outbound.guard import URLRefused, check_url  # aiohttp: not for every CLI command's start

    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"{param}: a URL of 1 to {MAX_URL_CHARS} characters", param=param)
    allow, networks = settings.allow_private_urls, settings.allowed_private_networks
    try:
        check_url(url, allow_private=allow, allowed_networks=networks)
        _check_resolved(url, allow, networks)
    except (URLRefused, AddressRefused) as refused:
        raise InvalidRequest(f"{param}: {refused}", param=param, code="url_refused") from None
    return url


def _check_resolved(url: str, allow_private: bool, networks: Sequence[str]) -> None:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return  # not resolvable now: every delivery resolves it again and checks what it gets
    refusal: AddressRefused | None = None
    for *_, address in found:
        try:
            check_address(host, str(address[0]), allow_private=allow_private, allowed_networks=networks)
        except AddressRefused as refused:
            refusal = refusal or refused
        else:
            return
    if refusal is not None:
        raise refusal


def check_events(events: Sequence[str] | None) -> list[str]:
    """The events an endpoint listens to (empty: all), each once; an unknown name is a 400."""
    values = list(events or [])
    bad = unknown_events(values)
    if bad:
        raise InvalidRequest(
            f"events: unknown event {bad[0]!r}; known events: {', '.join(EVENT_TYPES)} (or leave events out, or "
            "empty, for all of them)",
            param="events",
            code="unknown_event",
        )
    return list(dict.fromkeys(values))


def check_notify_emails(values: Sequence[str] | None) -> tuple[str, ...]:
    """Up to :data:`MAX_NOTIFY_EMAILS` plain addresses, as the email module will use them (duplicates dropped),
    or a 400 naming the bad one (:func:`batchyard.notify.email.validate_email_address` says what is wrong)."""
    if not values:
        return ()
    if isinstance(values, str) or len(values) > MAX_NOTIFY_EMAILS:
        raise InvalidRequest(f"notify_emails: a list of at most {MAX_NOTIFY_EMAILS} addresses", param="notify_emails")
    from batchyard.notify.email import validate_email_address  # smtplib and ssl: not for every CLI command

    clean: list[str] = []
    for value in values:
        try:
            clean.append(validate_email_address(value))
        except ValueError as exc:
            raise InvalidRequest(f"notify_emails: {exc}", param="notify_emails") from None
    return tuple(dict.fromkeys(clean))


class WebhookService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def create(
        self,
        principal: Principal = LOCAL_ADMIN,
        *,
        url: str,
        events: Sequence[str] | None = None,
        owner: str | None = None,
    ) -> tuple[WebhookRecord, str]:
        """A new endpoint of ``owner`` (default: the caller's; another owner's takes an admin) and its secret,
        shown only now."""
        principal.require_write()
        owner = check_owner_name(owner) if owner else principal.owner
        if owner != principal.owner:
            principal.require_admin()
        clean_events = check_events(events)
        clean_url = check_target_url(url, self.settings, param="url")
        if self.store.webhooks.count(owner) >= MAX_WEBHOOKS_PER_OWNER:
            raise InvalidRequest(
                f"{owner} has {MAX_WEBHOOKS_PER_OWNER} webhook endpoints already, the most there may be; remove one "
                "first",
                param="url",
                code="too_many_webhooks",
            )
        return self.store.webhooks.add(owner, clean_url, clean_events)

    def list_webhooks(
        self,
        principal: Principal = LOCAL_ADMIN,
        *,
        owner: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[WebhookRecord], str | None]:
        """A page of the endpoints ``principal`` may see, oldest first, and the cursor of the next (or None)."""
        scope = principal.owner_filter(owner, "webhooks")
        after = None
        if cursor:
            last = self.store.webhooks.get(cursor)
            if last is None or not principal.can_see(last.owner):
                raise InvalidRequest(f"cursor {cursor[:100]!r} is not a next_cursor of this list", param="cursor")
            after = (last.created_at, last.id)
        records = self.store.webhooks.list(scope, after=after, limit=limit + 1)
        more = len(records) > limit
        records = records[:limit]
        return records, records[-1].id if more and records else None

    def get(self, webhook_id: str, principal: Principal = LOCAL_ADMIN) -> WebhookRecord:
        record = self.store.webhooks.get(webhook_id) if "\x00" not in webhook_id else None
        if record is None or not principal.can_see(record.owner):
            raise NotFound(f"no webhook {webhook_id[:100]!r}", param="webhook_id")
        return record

    def delete(self, webhook_id: str, principal: Principal = LOCAL_ADMIN) -> WebhookRecord:
        """Delete the endpoint: nothing more is sent to it, its pending messages and its log go with it."""
        principal.require_write()
        record = self.get(webhook_id, principal)
        self.store.webhooks.delete(record.id)
        return record

    def deliveries(
        self, webhook_id: str, principal: Principal = LOCAL_ADMIN, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[DeliveryRecord], str | None]:
        """A page of the endpoint's delivery attempts, newest first, and the next page's cursor (or None)."""
        self.get(webhook_id, principal)
        before = None
        if cursor:
            if not cursor.isdigit() or len(cursor) > 18:
                raise InvalidRequest(f"cursor {cursor[:100]!r} is not a next_cursor of this list", param="cursor")
            before = int(cursor)
        records = self.store.outbox.deliveries(webhook_id, before_id=before, limit=limit + 1)
        more = len(records) > limit
        records = records[:limit]
        return records, str(records[-1].id) if more and records else None

    def redeliver(self, webhook_id: str, delivery_id: str, principal: Principal = LOCAL_ADMIN) -> MessageRecord:
        """Send the message of a delivery again now (the same webhook-id and body), with a fresh retry schedule.
        ``delivery_id`` is an attempt's id from the delivery log, or the message id (``msg_...``)."""
        principal.require_write()
        self.get(webhook_id, principal)
        message_id: str | None = delivery_id
        if delivery_id.isdigit() and len(delivery_id) <= 18:
            message_id = self.store.outbox.message_of_attempt(int(delivery_id))
        message = self.store.outbox.get_message(message_id) if message_id and "\x00" not in message_id else None
        if message is None or message.webhook_id != webhook_id:
            raise NotFound(f"no delivery {delivery_id[:100]!r} of webhook {webhook_id}", param="delivery_id")
        self.store.outbox.redeliver(message.id)
        found = self.store.outbox.get_message(message.id)
        assert found is not None
        return found

    def job_notifications(self, job_id: str, principal: Principal = LOCAL_ADMIN) -> list[MessageRecord]:
        """Every notification a job's events made (to endpoints, its own webhook_url, email), oldest first, as
        they stand. Another owner's job is NotFound, like a missing one."""
        job = self.store.jobs.get_job(job_id) if "\x00" not in job_id else None
        if job is None:
            raise NotFound(f"no job {job_id!r}", param="job_id")
        principal.check_owner(job.owner, f"job {job_id!r}", param="job_id")
        return sorted(self.store.outbox.messages_of_jobs([job_id]), key=lambda m: (m.occurred_at, m.id))

    def default_secret(self, principal: Principal = LOCAL_ADMIN, *, owner: str | None = None) -> tuple[str, str]:
        """(owner, its default signing secret), made on first use: jobs' own ``webhook_url`` deliveries are signed
        with it. Reading a secret takes write access (a viewer cannot); another owner's, an admin."""
        principal.require_write()
        owner = check_owner_name(owner) if owner else principal.owner
        if owner != principal.owner:
            principal.require_admin()
        return owner, self.store.outbox.default_secret(owner)
