"""A finished job's summary email: composed as text and HTML, sent over SMTP with the standard library.

Three functions make the whole interface. The outbox composes one message per finished job and sends it from a
thread, sending again later when :class:`~batchyard.errors.EmailDeliveryError` says ``retryable``::

    message = compose_job_email(job_json, public_url=settings.public_url, sender=settings.email_from)
    refused = send_email(message, job_json["notify_emails"], settings)   # blocking; raises EmailDeliveryError

and ``validate_email_address`` checks the addresses a job asks to notify when it is submitted. Sending lives in
:mod:`batchyard.notify.smtp`, addresses in :mod:`batchyard.notify.addresses`; both are importable from here.

Everything a job carries that a person typed (its description, its error) is untrusted here: header values are
made one line (no header injection), the HTML escapes every value and links only to the configured public URL.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import quote, urlsplit

from batchyard.core import humanize
from batchyard.data.results import ARTIFACTS_ZIP, ERRORS_JSONL, RESULTS_CSV, RESULTS_JSONL
from batchyard.notify.addresses import UNSAFE_CHARS, domain_of, one_line, validate_email_address
from batchyard.notify.smtp import EMAIL_DISABLED_MESSAGE, send_email

__all__ = ["EMAIL_DISABLED_MESSAGE", "compose_job_email", "send_email", "validate_email_address"]

log = logging.getLogger("batchyard.notify")

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled", "expired"})
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
_WARNING_COLOUR = "#9a6700"  # completed, but some items failed
_HEADER_POLICY = policy.default.clone(max_line_length=998)


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
        message["Message-ID"] = make_msgid("batchyard", domain=domain_of(sender))
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
    job_id = one_line(str(job.get("id") or "?"), 100)
    counts = job.get("counts") or {}
    succeeded, failed = _int(counts.get("succeeded")), _int(counts.get("failed"))
    skipped, cancelled = _int(counts.get("skipped")), _int(counts.get("cancelled"))
    total = _int(counts.get("total"))
    error = job.get("error") or {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    error_text = one_line(str(error.get("message") or error), BODY_TEXT_CHARS) if error else None

    parts = [f"{_count(succeeded)} succeeded"]
    parts += [f"{_count(n)} {word}" for n, word in ((failed, "failed"), (skipped, "skipped")) if n]
    parts += [f"{_count(cancelled)} cancelled"] if cancelled else []
    outcome = ", ".join(parts)
    if status == "failed" and total == 0 and error_text:
        outcome = one_line(error_text, SUBJECT_DESCRIPTION_CHARS)  # nothing ran: the reason is the news
    description = one_line(str(job.get("description") or ""), BODY_TEXT_CHARS) or None
    subject = f"Batchyard job {job_id} {status}: {outcome}"
    if description:
        subject += f" - {one_line(description, SUBJECT_DESCRIPTION_CHARS)}"

    details = [("Job", job_id), ("Handler", one_line(str(job.get("handler") or "?"), 200)), ("Status", status)]
    if error_text:
        code = error.get("code")
        details.append(("Error", error_text + (f" [{one_line(str(code), 100)}]" if code else "")))
    started, finished = _float(job.get("started_at")), _float(job.get("finished_at"))
    details.append(("Started", _when(started) if started is not None else "did not start"))
    if finished is not None:
        details.append(("Finished", _when(finished)))
    if started is not None and finished is not None:
        details.append(("Duration", humanize.duration(finished - started)))

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
                rows.append((one_line(str(name), 100).replace("_", " ").capitalize(), _number(number)))
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
                humanize.size(size) if size is not None else "",
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


# -- text helpers ---------------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _base_url(public_url: str | None) -> str | None:
    if public_url is None or not public_url.strip():
        return None
    url = public_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or UNSAFE_CHARS.search(url) or " " in url:
        raise ValueError(f"public_url {public_url!r} is not an http(s) URL such as https://batchyard.example.com")
    return url


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
