"""Notifications about finished jobs, as messages: composing them and handing them to a server.

``batchyard.notify.email`` composes a job's summary email (text and HTML) and, through ``notify.smtp``, sends it
over SMTP; ``notify.addresses`` checks the addresses a job asks to notify. Delivery
(when, how often, retries) is the outbox's business; this package is pure composition plus the SMTP client, and
imports neither the store, the services, the API, the CLI nor the worker.
"""

from __future__ import annotations

from batchyard.notify.email import (
    EMAIL_DISABLED_MESSAGE,
    compose_job_email,
    send_email,
    validate_email_address,
)

__all__ = ["EMAIL_DISABLED_MESSAGE", "compose_job_email", "send_email", "validate_email_address"]
