"""A finished job's summary email: composed as text and HTML, sent over SMTP with the standard library.

Three functions make the whole interface. The outbox composes one message per finished job and sends it from a
thread, sending again later when :class:`~batchyard.errors.EmailDeliveryError` says ``retryable``::

    message = compose_job_email(job_json, public_url=settings.public_url, sender=settings.email_from)
    refused = send_email(message, job_json["notify_emails"], settings)   # blocking; raises EmailDeliveryError

and ``validate_email_address`` checks the addresses a job asks to notify when it is submitted.

Everything a job carries that a person typed (its description, its error) is untrusted here: header values are
made one line (no header injection), the HTML escapes every value and links only to the configured public URL.
The password never appears in a message, a log line or an error.
"""

from __future__ import annotations

import copy
import html
import ipaddress
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Any
from urllib.parse import quote, urlsplit

from batchyard.data.results import ARTIFACTS_ZIP, ERRORS_JSONL, RESULTS_CSV, RESULTS_JSONL
from batchyard.errors import EmailDeliveryError
from batchyard.settings import Settings

log = logging.getLogger("batchyard.notify")

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled", "expired"})
EMAIL_DISABLED_MESSAGE = "no email sent: no SMTP server is configured (set BATCHYARD_SMTP_HOST)"
MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit less the angle brackets
MAX_LOCAL_PART_LENGTH = 64
SUBJECT_DESCRIPTION_CHARS = 80
BODY_TEXT_CHARS = 1000

LINKS_NEED_SESSION = (
    "The links need you signed in to the dashboard; if one answers 'unauthenticated', open the job page and "
    "download from there."
)
# What each result file is, in the order the email lists them.
DOWNLOADS = (
    (RESULTS_JSONL, "Results, one JSON line per succeeded item"),
    (RESULTS_CSV, "Every item as a CSV row"),
    (ERRORS_JSONL, "Failed items with their last error, one JSON line each"),
    (ARTIFACTS_ZIP, "The files the handler saved, zipped"),
)
_STATUS_COLOURS = {"completed": "#1a7f37", "failed": "#cf222e", "cancelled": "#57606a", "expired": "#9a6700"}
_HEADER_POLICY = policy.default.clone(max_line_length=998)
_WARNING_COLOUR = "#9a6700"  # completed, but some items failed
# Control characters, line and paragraph separators, zero-width and bidirectional controls: a header keeps none
# (CR/LF would start a new header), a body shows them as a space.
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+")
# RFC 5322 dot-atom text: what an unquoted local part may hold.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


# -- addresses ------------------------------------------------------------------------------------------------------


def validate_email_address(address: str) -> str:
    """``address`` as it will be used (trimmed, domain lower-cased and IDNA-encoded) if it is a plain address
    such as ``ada@example.com``; else a ``ValueError`` saying what is wrong.

    Accepted: one ``@``; a local part of letters, digits, ``.`` and ``!#$%&'*+/=?^_`{|}~-`` (no quotes, spaces or
    control characters, at most 64 characters); a domain of dotted labels (``example.com``, ``mail.example.co.uk``,
    international names too) or ``localhost``; at most 254 characters. Display names (``Ada <ada@example.com>``)
    and IP-literal domains are refused. Whether the mailbox exists only the receiving server knows."""
    if not isinstance(address, str):
        raise ValueError("an email address must be a string such as ada@example.com")
    text = address.strip()
    if not text:
        raise ValueError("an email address is empty; write one such as ada@example.com")
    shown = _one_line(text, 80)
    if any(c.isspace() for c in text) or _UNSAFE_CHARS.search(text):
        raise ValueError(f"{shown!r} is not an email address: it contains spaces or control characters")
    if text.count("@") != 1:
        raise ValueError(f"{shown!r} is not an email address: it must contain exactly one @, as in ada@example.com")
    local, domain = text.split("@")
    if not local or not domain:
        raise ValueError(f"{shown!r} is not an email address: it needs a name before the @ and a domain after it")
    if len(local) > MAX_LOCAL_PART_LENGTH or not _LOCAL_PART.fullmatch(local):
        raise ValueError(
            f"{shown!r} is not an email address: the part before the @ must be at most {MAX_LOCAL_PART_LENGTH} "
            "letters, digits and . ! # $ % & ' * + / = ? ^ _ ` { | } ~ - (no leading, trailing or double dots)"
        )
    ascii_domain = _ascii_domain(domain.rstrip(".").lower())
    if ascii_domain is None:
        raise ValueError(
            f"{shown!r} is not an email address: the domain must be a name with a dot such as example.com "
            "(or localhost)"
        )
    normalized = f"{local}@{ascii_domain}"
    if len(normalized) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"{shown!r} is not an email address: it is longer than {MAX_ADDRESS_LENGTH} characters")
    return normalized


def _ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDNA) if it is ``localhost`` or two or more valid labels; else None."""
    if domain == "localhost":
        return domain
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 10.0.0.1 is an address, not a domain
        return None
    return ascii_form


# -- composing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Download:
    name: str
    what: str
    detail: str
    url: str | None


@dataclass(frozen=True)
class _Summary:
    """Everything the email says, as plain (unescaped) text; the text and HTML parts render the same summary."""

    job_id: str
    subject: str
    headline: str
    description: str | None
    colour: str
    details: list[tuple[str, str]]
    counts: list[tuple[str, str]]
    usage: list[tuple[str, str]]
    job_url: str | None
    downloads: list[_Download]
    downloads_note: str | None
    cli_commands: list[str]
    cli_note: str
    footer: str = field(default="Sent by Batchyard because this job listed this address in notify_emails.", init=False)


def compose_job_email(
    job: dict[str, Any], *, public_url: str | None, sender: str | None = None, now: float | None = None
) -> EmailMessage:
    """The summary email of a finished job (``job`` is its ``JobOut`` JSON; status completed, failed, cancelled
    or expired): a subject naming the job, its outcome and description, and a text body with an HTML
    alternative that give the job's counts, duration, usage and cost, its error if it failed, and where to
    download its result files: links under ``public_url`` when it is set, else the CLI command.

    ``sender`` becomes From (``batchyard@example.com`` or ``Batchyard <batchyard@example.com>``) and the domain
    of the Message-ID; without it :func:`send_email` sets both from ``settings.email_from``. To holds the job's
    ``notify_emails`` when it has them (else :func:`send_email` sets it from its recipients). Date is ``now``,
    default the current time."""
    status = str(job.get("status") or "")
    if status not in FINISHED_STATUSES:
        raise ValueError(f"job {job.get('id')!r} has status {status!r}: only a finished job's email is composed")
    base_url = _base_url(public_url)
    summary = _summarize(job, status, base_url)

    message = EmailMessage()
    message["Subject"] = summary.subject
    if sender is not None:
        message["From"] = sender
        message["Message-ID"] = make_msgid("batchyard", domain=_domain_of(sender))
    recipients = _notify_emails(job)
    if recipients:
        message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.fromtimestamp(time.time() if now is None else now, UTC))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a notification
    message["X-Auto-Response-Suppress"] = "All"  # the same for Exchange
    message["X-Batchyard-Job-Id"] = summary.job_id
    message.set_content(_render_text(summary))
    message.add_alternative(_render_html(summary), subtype="html")
    # The parts are encoded (quoted-printable, lines under 78) under the default policy; the headers are then
    # written unfolded up to RFC 5322's 998: the default folding moves a subject just over 78 characters whole
    # onto a continuation line, which a reader sees as a leading space.
    message.policy = _HEADER_POLICY
    return message


def _notify_emails(job: dict[str, Any]) -> list[str]:
    """The job's valid ``notify_emails`` (checked when it was submitted; checked again before they go in a
    header)."""
    values = job.get("notify_emails")
    if not isinstance(values, list):
        return []
    found = []
    for value in values:
        try:
            found.append(validate_email_address(value))
        except ValueError:
            log.warning("job %s: not emailing %r, which is not an email address", job.get("id"), value)
    return list(dict.fromkeys(found))


def _summarize(job: dict[str, Any], status: str, base_url: str | None) -> _Summary:
    job_id = _one_line(str(job.get("id") or "?"), 100)
    counts = job.get("counts") or {}
    succeeded, failed = _int(counts.get("succeeded")), _int(counts.get("failed"))
    skipped, cancelled = _int(counts.get("skipped")), _int(counts.get("cancelled"))
    total = _int(counts.get("total"))
    error = job.get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    error_text = _one_line(str(error.get("message") or error), BODY_TEXT_CHARS) if error else None

    parts = [f"{_count(succeeded)} succeeded"]
    parts += [f"{_count(n)} {word}" for n, word in ((failed, "failed"), (skipped, "skipped")) if n]
    parts += [f"{_count(cancelled)} cancelled"] if cancelled else []
    outcome = ", ".join(parts)
    if status == "failed" and total == 0 and error_text:
        outcome = _one_line(error_text, SUBJECT_DESCRIPTION_CHARS)  # nothing ran: the reason is the news
    description = _one_line(str(job.get("description") or ""), BODY_TEXT_CHARS) or None
    subject = f"Batchyard job {job_id} {status}: {outcome}"
    if description:
        subject += f" - {_one_line(description, SUBJECT_DESCRIPTION_CHARS)}"

    details = [("Job", job_id), ("Handler", _one_line(str(job.get("handler") or "?"), 200)), ("Status", status)]
    if error_text:
        code = error.get("code")
        details.append(("Error", error_text + (f" [{_one_line(str(code), 100)}]" if code else "")))
    started, finished = _float(job.get("started_at")), _float(job.get("finished_at"))
    details.append(("Started", _when(started) if started is not None else "did not start"))
    if finished is not None:
        details.append(("Finished", _when(finished)))
    if started is not None and finished is not None:
        details.append(("Duration", duration(finished - started)))

    count_rows = [
        ("Total", _count(total)),
        ("Succeeded", _count(succeeded)),
        ("Failed", _count(failed)),
        ("Skipped", _count(skipped)),
        ("Cancelled", _count(cancelled)),
    ]
    usage_rows = _usage_rows(job)
    job_url = f"{base_url}/jobs/{quote(job_id, safe='')}" if base_url else None
    downloads, note = _downloads(job, job_id, base_url, done=succeeded + failed + skipped)
    commands, cli_note = _cli(job_id, base_url)
    colour = _WARNING_COLOUR if status == "completed" and failed else _STATUS_COLOURS[status]
    return _Summary(
        job_id=job_id,
        subject=subject,
        headline=f"Job {job_id} {status}: {outcome}",
        description=description,
        colour=colour,
        details=details,
        counts=count_rows,
        usage=usage_rows,
        job_url=job_url,
        downloads=downloads,
        downloads_note=note,
        cli_commands=commands,
        cli_note=cli_note,
    )


def _usage_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    cost = _float(job.get("cost")) or 0.0
    usage = job.get("usage") or {}
    if cost:
        rows.append(("Cost", _number(cost)))
    if isinstance(usage, dict):
        for name, value in sorted(usage.items()):
            number = _float(value)
            if number is not None:
                rows.append((_one_line(str(name), 100).replace("_", " ").capitalize(), _number(number)))
    return rows


def _downloads(
    job: dict[str, Any], job_id: str, base_url: str | None, *, done: int
) -> tuple[list[_Download], str | None]:
    files = job.get("result_files") or {}
    if not isinstance(files, dict):
        files = {}
    found = []
    for name, what in DOWNLOADS:
        meta = files.get(name)
        if meta is None:
            continue
        rows = _optional_int(meta.get("rows")) if isinstance(meta, dict) else None
        size = _optional_int(meta.get("bytes")) if isinstance(meta, dict) else None
        if rows == 0:
            continue  # an empty file (errors.jsonl when nothing failed) is not worth a link
        unit = "file" if name == ARTIFACTS_ZIP else "row"
        detail = ", ".join(
            part
            for part in (
                f"{_count(rows)} {unit}{'s' if rows != 1 else ''}" if rows is not None else "",
                size_text(size) if size is not None else "",
            )
            if part
        )
        url = f"{base_url}/api/v1/jobs/{quote(job_id, safe='')}/{name}" if base_url else None
        found.append(_Download(name, what, detail, url))
    if found:
        # The API takes the dashboard's session for downloads, but the cookie is SameSite=Strict: a click from a
        # webmail site arrives without it. The job page then asks to sign in, and its downloads work.
        return found, LINKS_NEED_SESSION if base_url else None
    if not files and done:
        return [], "The result files were not written yet when this email was sent; they will be shortly."
    return [], "Nothing to download: no item finished."


def _cli(job_id: str, base_url: str | None) -> tuple[list[str], str]:
    if base_url:
        return (
            [f"batchyard jobs download {job_id} -o {job_id} --url {base_url}"],
            "With the CLI (set BATCHYARD_API_KEY to your API key first):",
        )
    return (
        [f"batchyard jobs download {job_id} -o {job_id}"],
        "With the CLI, on the server's machine (from elsewhere add --url with the server's address and "
        "BATCHYARD_API_KEY with your key):",
    )


def _render_text(s: _Summary) -> str:
    lines = [s.headline]
    if s.description:
        lines.append(s.description)
    lines += ["", *_aligned(s.details, indent=""), "", "Items", *_aligned(s.counts, indent="  ", right=True)]
    if s.usage:
        lines += ["", "Usage", *_aligned(s.usage, indent="  ", right=True)]
    if s.job_url:
        lines += ["", f"Open the job: {s.job_url}"]
    lines += ["", "Downloads"]
    for d in s.downloads:
        lines.append(f"  {d.name}" + (f" ({d.detail})" if d.detail else "") + f": {d.what}")
        if d.url:
            lines.append(f"    {d.url}")
    if s.downloads_note:
        lines.append(f"  {s.downloads_note}")
    lines += ["", s.cli_note, *(f"  {command}" for command in s.cli_commands), "", "-- ", s.footer]
    return "\n".join(lines) + "\n"


def _aligned(rows: list[tuple[str, str]], *, indent: str, right: bool = False) -> list[str]:
    label_width = max((len(label) for label, _ in rows), default=0)
    value_width = max((len(value) for _, value in rows), default=0)
    return [
        f"{indent}{label.ljust(label_width)}  {value.rjust(value_width) if right else value}".rstrip()
        for label, value in rows
    ]


# Inline styles only: mail clients drop <style> blocks and external sheets, and some strip classes.
_FONT = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
_CELL = "padding:4px 12px 4px 0;vertical-align:top;"
_LABEL = _CELL + "color:#57606a;white-space:nowrap;"
_H2 = "margin:20px 0 6px;font-size:15px;color:#1f2328;"
_LINK = "color:#0969da;"
_CODE = "font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;"


def _render_html(s: _Summary) -> str:
    e = _escape
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(s.subject)}</title></head>",
        f'<body style="margin:0;padding:0;background:#f6f8fa;{_FONT};">',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f6f8fa;">',
        '<tr><td align="center" style="padding:24px 12px;">',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;'
        f"background:#ffffff;border:1px solid #d0d7de;border-radius:6px;border-top:4px solid {s.colour};"
        f'{_FONT};font-size:15px;line-height:1.5;color:#1f2328;">',
        '<tr><td style="padding:20px 24px;">',
        f'<h1 style="margin:0 0 4px;font-size:20px;line-height:1.3;color:{s.colour};">{e(s.headline)}</h1>',
    ]
    if s.description:
        parts.append(f'<p style="margin:0 0 8px;color:#57606a;">{e(s.description)}</p>')
    parts.append(_html_table(s.details))
    parts += [f'<h2 style="{_H2}">Items</h2>', _html_table(s.counts, numbers=True)]
    if s.usage:
        parts += [f'<h2 style="{_H2}">Usage</h2>', _html_table(s.usage, numbers=True)]
    if s.job_url:
        parts.append(
            f'<p style="margin:20px 0 0;"><a href="{e(s.job_url)}" style="display:inline-block;padding:8px 16px;'
            'background:#0969da;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600;">'
            "Open the job</a></p>"
        )
    parts.append(f'<h2 style="{_H2}">Downloads</h2>')
    if s.downloads:
        parts.append('<ul style="margin:0;padding-left:20px;">')
        for d in s.downloads:
            name = f'<a href="{e(d.url)}" style="{_LINK}">{e(d.name)}</a>' if d.url else f"<b>{e(d.name)}</b>"
            detail = f' <span style="color:#57606a;">({e(d.detail)})</span>' if d.detail else ""
            parts.append(f'<li style="margin:2px 0;">{name}{detail}: {e(d.what)}</li>')
        parts.append("</ul>")
    if s.downloads_note:
        parts.append(f'<p style="margin:4px 0;">{e(s.downloads_note)}</p>')
    parts.append(f'<p style="margin:12px 0 4px;">{e(s.cli_note)}</p>')
    for command in s.cli_commands:
        parts.append(
            f'<pre style="margin:0;padding:8px 12px;background:#f6f8fa;border-radius:6px;white-space:pre-wrap;'
            f'word-break:break-all;{_CODE}">{e(command)}</pre>'
        )
    parts += [
        "</td></tr></table>",
        f'<p style="margin:12px 0 0;font-size:12px;color:#57606a;">{e(s.footer)}</p>',
        "</td></tr></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_table(rows: list[tuple[str, str]], *, numbers: bool = False) -> str:
    align = "text-align:right;" if numbers else ""
    body = "".join(
        f'<tr><td style="{_LABEL}">{_escape(label)}</td><td style="{_CELL}{align}">{_escape(value)}</td></tr>'
        for label, value in rows
    )
    table = '<table role="presentation" cellpadding="0" cellspacing="0" style="border-collapse:collapse;">'
    return f"{table}{body}</table>"


# -- sending --------------------------------------------------------------------------------------------------------


def send_email(
    message: EmailMessage, recipients: Sequence[str] | Settings, settings: Settings | None = None
) -> dict[str, tuple[int, str]]:
    """Send ``message`` to ``recipients`` through the configured SMTP server; blocking (run it in a thread).
    ``send_email(message, settings)`` sends to the addresses in the message's To and Cc (a job's
    ``notify_emails``, as :func:`compose_job_email` put them there).

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
        outgoing["Message-ID"] = make_msgid("batchyard", domain=_domain_of(str(outgoing["From"])))
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
    return _one_line(text, 300)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- text helpers ---------------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line (control, separator and bidi characters become spaces, runs of space one), cut to
    ``limit`` characters with an ellipsis."""
    flat = " ".join(_UNSAFE_CHARS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _base_url(public_url: str | None) -> str | None:
    if public_url is None or not public_url.strip():
        return None
    url = public_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or _UNSAFE_CHARS.search(url) or " " in url:
        raise ValueError(f"public_url {public_url!r} is not an http(s) URL such as https://batchyard.example.com")
    return url


def _domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    try:
        domain = Address(addr_spec=address).domain
    except (ValueError, IndexError):
        domain = ""
    return domain or "batchyard.invalid"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else int(_float(value) or 0)


def _optional_int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _count(n: int) -> str:
    return f"{n:,}"


def _number(value: float) -> str:
    """Token counts as ``12,345``; costs as ``0.0042`` or ``1,234.50``."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# The CLI's own formats (batchyard.cli.humanize, which this package may not import); a test holds them equal.


def duration(seconds: float | None) -> str:
    """``0.42s``, ``4.2s``, ``42s``, ``1m 05s``, ``2h 03m``, ``3d 04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def size_text(n_bytes: int) -> str:
    """``512 B``, ``12.9 MB``."""
    value = float(n_bytes)
    if value < 1000:
        return f"{int(value)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
