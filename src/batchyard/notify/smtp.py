"""Sending a message over SMTP with the standard library, and what each failure means for a retry.

Blocking (the outbox runs it in a thread). TLS is verified with ``ssl.create_default_context()``; the password is
sent only over TLS or to a loopback server, and never appears in a log line or an error.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid, parseaddr

from batchyard.errors import EmailDeliveryError
from batchyard.notify.addresses import domain_of, one_line
from batchyard.settings import Settings

log = logging.getLogger("batchyard.notify")

EMAIL_DISABLED_MESSAGE = "no email sent: no SMTP server is configured (set BATCHYARD_SMTP_HOST)"


def send_email(
    message: EmailMessage, recipients: Sequence[str] | Settings, settings: Settings | None = None
) -> dict[str, tuple[int, str]]:
    """Send ``message`` to ``recipients`` through the configured SMTP server; blocking (run it in a thread).
    ``send_email(message, settings)`` sends to the addresses in the message's To and Cc (a job's
    ``notify_emails``, as :func:`batchyard.notify.email.compose_job_email` put them there).

    Connects as ``settings.smtp_tls`` says (``tls``: TLS from the first byte; ``starttls``: upgrade, refusing a
    server that does not offer it; ``none``: plain), verifying the certificate against the system's trust store
    or ``smtp_ca_file``; logs in when ``smtp_username`` is set (over plain text only to a loopback server); gives
    up on a silent server after ``smtp_timeout_seconds``. What the message lacks is added to the copy that is
    sent (the caller's message is not changed): From and Message-ID from ``settings.email_from``, To naming the
    recipients.

    Returns the recipients the server refused while it took the others, as {address: (code, reply)}: empty when
    every one was accepted. Raises :class:`~batchyard.errors.EmailDeliveryError` when the message reached no one:
    ``retryable`` for a connection error, a timeout or a 4xx reply; final for a 5xx reply (550 no such user),
    every recipient refused for good, a certificate or login failure, or no SMTP server configured."""
    if isinstance(recipients, Settings):
        settings, addresses = (
            recipients,
            [a for _, a in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))],
        )
    elif settings is None:
        raise TypeError("send_email(message, recipients, settings) or send_email(message, settings)")
    else:
        addresses = list(recipients)
    host = settings.smtp_host
    if host is None:
        raise EmailDeliveryError(EMAIL_DISABLED_MESSAGE, retryable=False)
    to = list(dict.fromkeys(a.strip() for a in addresses if a.strip()))
    if not to:
        raise EmailDeliveryError("no email sent: the message has no recipients", retryable=False)
    where = f"SMTP server {host}:{settings.smtp_port}"
    if settings.smtp_username and settings.smtp_tls == "none" and not _is_loopback(host):
        raise EmailDeliveryError(
            f"no email sent: logging in to {where} would send the password unencrypted; set "
            "BATCHYARD_SMTP_TLS=starttls or tls",
            retryable=False,
        )
    outgoing = _completed(message, to, settings)
    sender = parseaddr(str(outgoing["From"]))[1]
    try:
        refused = _deliver(outgoing, sender, to, settings, host)
    except EmailDeliveryError:
        raise
    except smtplib.SMTPException as exc:
        raise _smtp_error(exc, where, settings) from None
    except OSError as exc:
        raise _network_error(exc, where, settings) from None
    if refused:
        log.warning(
            "email %s: %s refused %s",
            outgoing.get("Message-ID"),
            where,
            ", ".join(f"{address} ({code} {reply})" for address, (code, reply) in refused.items()),
        )
    return refused


def _completed(message: EmailMessage, to: list[str], settings: Settings) -> EmailMessage:
    """A copy of the message with the headers it lacks: From, Message-ID, To."""
    outgoing = copy.deepcopy(message)
    if "From" not in outgoing:
        outgoing["From"] = settings.email_from
    if "Message-ID" not in outgoing:
        outgoing["Message-ID"] = make_msgid("batchyard", domain=domain_of(str(outgoing["From"])))
    if "To" not in outgoing:
        outgoing["To"] = ", ".join(to)
    return outgoing


def _deliver(
    message: EmailMessage, sender: str, to: list[str], settings: Settings, host: str
) -> dict[str, tuple[int, str]]:
    context = ssl.create_default_context(cafile=settings.smtp_ca_file)
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_tls == "tls":
        smtp = smtplib.SMTP_SSL(host, settings.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, settings.smtp_port, timeout=timeout)
    try:
        if settings.smtp_tls == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise EmailDeliveryError(
                    f"no email sent: SMTP server {host}:{settings.smtp_port} does not offer STARTTLS; use a "
                    "server that does, or BATCHYARD_SMTP_TLS=none if the network to it is trusted",
                    retryable=False,
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        refused = smtp.send_message(message, from_addr=sender, to_addrs=to)
    finally:
        _quit(smtp)
    return {address: (code, _reply(reply)) for address, (code, reply) in refused.items()}


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; the message is already accepted, so a server that hangs up first changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _smtp_error(exc: smtplib.SMTPException, where: str, settings: Settings) -> EmailDeliveryError:
    """What a failure the server reported (or smtplib saw in the protocol) means for a retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return _all_refused(exc.recipients, where)
    if isinstance(exc, smtplib.SMTPResponseException):
        retryable = 400 <= exc.smtp_code < 500
        return EmailDeliveryError(
            f"email not sent: {where} answered {exc.smtp_code} {_reply(exc.smtp_error)}"
            + ("" if retryable else " (a permanent refusal)"),
            retryable=retryable,
            smtp_code=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):  # smtplib reports a silent server as a disconnection
            return _timed_out(where, settings)
        return EmailDeliveryError(f"email not sent: {where} closed the connection ({exc})", retryable=True)
    # AUTH or another extension the server lacks, no common AUTH mechanism: the settings need a change
    return EmailDeliveryError(f"email not sent: {where}: {exc}", retryable=False)


def _network_error(exc: OSError, where: str, settings: Settings) -> EmailDeliveryError:
    """What a failure to reach or talk to the server means for a retry."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return EmailDeliveryError(
            f"email not sent: the certificate of {where} is not trusted ({exc.verify_message}); give its CA "
            "with BATCHYARD_SMTP_CA_FILE",
            retryable=False,
        )
    if isinstance(exc, ssl.SSLError):
        return EmailDeliveryError(
            f"email not sent: TLS with {where} failed ({exc.reason or exc}); check BATCHYARD_SMTP_TLS and "
            "BATCHYARD_SMTP_PORT (tls is usually port 465, starttls 587)",
            retryable=False,
        )
    if isinstance(exc, TimeoutError):
        return _timed_out(where, settings)
    # refused, unreachable, DNS: the server may be back later
    return EmailDeliveryError(f"email not sent: cannot reach {where} ({exc})", retryable=True)


def _timed_out(where: str, settings: Settings) -> EmailDeliveryError:
    return EmailDeliveryError(
        f"email not sent: {where} did not answer within {settings.smtp_timeout_seconds:g}s", retryable=True
    )


def _all_refused(recipients: dict[str, tuple[int, bytes]], where: str) -> EmailDeliveryError:
    refused = {address: (code, _reply(reply)) for address, (code, reply) in recipients.items()}
    retryable = any(400 <= code < 500 for code, _ in refused.values())  # a mailbox over quota, greylisting
    shown = "; ".join(f"{address}: {code} {reply}" for address, (code, reply) in refused.items())
    return EmailDeliveryError(
        f"email not sent: {where} refused every recipient ({shown})",
        retryable=retryable,
        smtp_code=next(iter(refused.values()))[0],
        refused=refused,
    )


def _reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return one_line(text, 300)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
