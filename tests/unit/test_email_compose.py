"""A finished job's email as its recipient reads it: subject, text and HTML parts, headers; addresses; settings."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest

from batchyard.notify import compose_job_email, validate_email_address
from batchyard.settings import Settings

STARTED = 1_796_112_000.0  # 2026-12-01 08:00:00 UTC
PUBLIC = "https://batchyard.example.com"
SENDER = "Batchyard <batchyard@example.com>"


def job_json(**changes: Any) -> dict[str, Any]:
    """A finished job as JobOut sends it (the fields the email reads, and a few it does not)."""
    job: dict[str, Any] = {
        "id": "job_ab12",
        "handler": "thumbnail",
        "owner": "alice",
        "project": None,
        "status": "completed",
        "description": "March mailing",
        "tags": [],
        "counts": {
            "total": 1000,
            "queued": 0,
            "running": 0,
            "succeeded": 998,
            "failed": 2,
            "cancelled": 0,
            "skipped": 0,
            "done": 1000,
        },
        "duration_seconds": 245.3,
        "cost": 0.4213,
        "usage": {"prompt_tokens": 12000.0, "completion_tokens": 3456.0},
        "error": None,
        "created_at": STARTED - 5,
        "started_at": STARTED,
        "finished_at": STARTED + 245.3,
        "result_files": {
            "results.jsonl": {"bytes": 123_456, "rows": 998},
            "errors.jsonl": {"bytes": 800, "rows": 2},
            "results.csv": {"bytes": 99_999, "rows": 1000},
            "artifacts.zip": {"bytes": 12_345_678, "rows": 998},
        },
        "finished": True,
    }
    job.update(changes)
    return job


def compose(job: dict[str, Any], public_url: str | None = PUBLIC) -> EmailMessage:
    return compose_job_email(job, public_url=public_url, sender=SENDER, now=STARTED + 300)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return cast(str, part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return cast(str, part.get_content())


def reparsed(message: EmailMessage) -> EmailMessage:
    """The message as a mail client gets it: serialized, then parsed."""
    return message_from_bytes(message.as_bytes(), policy=policy.default)


def test_completed_with_failures_names_the_counts_duration_cost_and_every_download() -> None:
    message = reparsed(compose(job_json()))

    assert message["Subject"] == "Batchyard job job_ab12 completed: 998 succeeded, 2 failed - March mailing"
    assert message["From"] == SENDER
    assert message["Date"] == "Tue, 01 Dec 2026 08:05:00 +0000"
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message["Message-ID"])
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]

    text = text_of(message)
    assert "Job job_ab12 completed: 998 succeeded, 2 failed\nMarch mailing\n" in text
    assert re.search(r"Handler +thumbnail", text) and re.search(r"Status +completed", text)
    for label, value in [("Total", "1,000"), ("Succeeded", "998"), ("Failed", "2"), ("Skipped", "0")]:
        assert re.search(rf"^  {label} +{value}$", text, re.MULTILINE), label
    assert re.search(r"Started +2026-12-01 08:00:00 UTC", text)
    assert re.search(r"Finished +2026-12-01 08:04:05 UTC", text)
    assert re.search(r"Duration +4m 05s", text)
    assert re.search(r"Cost +0.4213", text)
    assert re.search(r"Prompt tokens +12,000", text) and re.search(r"Completion tokens +3,456", text)
    assert f"Open the job: {PUBLIC}/jobs/job_ab12" in text
    for name, detail in [
        ("results.jsonl", "998 rows, 123.5 KB"),
        ("results.csv", "1,000 rows, 100.0 KB"),
        ("errors.jsonl", "2 rows, 800 B"),
        ("artifacts.zip", "998 files, 12.3 MB"),
    ]:
        assert f"{name} ({detail})" in text
        assert f"{PUBLIC}/api/v1/jobs/job_ab12/{name}" in text
    assert f"batchyard jobs download job_ab12 -o job_ab12 --url {PUBLIC}" in text
    assert "The links need you signed in to the dashboard; if one answers 'unauthenticated', open the job" in text

    page = html_of(message)
    assert "<style" not in page and "<link" not in page and "<script" not in page  # inline styles only
    assert f'<a href="{PUBLIC}/jobs/job_ab12"' in page
    for name in ("results.jsonl", "results.csv", "errors.jsonl", "artifacts.zip"):
        assert f'<a href="{PUBLIC}/api/v1/jobs/job_ab12/{name}"' in page
    assert "998 succeeded, 2 failed" in page and "4m 05s" in page and "0.4213" in page
    assert "#9a6700" in page  # completed with failures: the warning colour, not success green


def test_completed_without_failures_leaves_the_empty_errors_file_out() -> None:
    job = job_json(counts={**job_json()["counts"], "succeeded": 1000, "failed": 0})
    job["result_files"] = {**job["result_files"], "errors.jsonl": {"bytes": 0, "rows": 0}}
    message = compose(job)
    assert message["Subject"] == "Batchyard job job_ab12 completed: 1,000 succeeded - March mailing"
    assert "errors.jsonl" not in text_of(message)
    assert "#1a7f37" in html_of(message)


def test_failed_job_shows_its_error() -> None:
    job = job_json(
        status="failed",
        description=None,
        counts={**job_json()["counts"], "succeeded": 40, "failed": 60, "total": 100},
        error={"message": "failure threshold crossed: 60 of 100 items failed (max_failures=50)", "code": "too_many"},
    )
    message = compose(job)
    assert message["Subject"] == "Batchyard job job_ab12 failed: 40 succeeded, 60 failed"
    text = text_of(message)
    assert "Error     failure threshold crossed: 60 of 100 items failed (max_failures=50) [too_many]" in text
    assert "failure threshold crossed" in html_of(message)
    assert "#cf222e" in html_of(message)


def test_a_job_that_failed_before_running_puts_the_reason_in_the_subject() -> None:
    job = job_json(
        status="failed",
        description=None,
        counts=dict.fromkeys(("total", "queued", "running", "succeeded", "failed", "cancelled", "skipped", "done"), 0),
        error={"message": "input has 3 problems: line 2: not JSON [invalid_json]", "code": "invalid_input"},
        started_at=None,
        result_files={},
    )
    message = compose(job)
    assert message["Subject"] == "Batchyard job job_ab12 failed: input has 3 problems: line 2: not JSON [invalid_json]"
    text = text_of(message)
    assert re.search(r"Started +did not start", text) and "Duration" not in text
    assert "Nothing to download: no item finished." in text


def test_cancelled_job() -> None:
    job = job_json(
        status="cancelled",
        counts={**job_json()["counts"], "succeeded": 400, "failed": 0, "cancelled": 600},
        cost=0.0,
        usage={},
    )
    message = compose(job)
    assert message["Subject"] == "Batchyard job job_ab12 cancelled: 400 succeeded, 600 cancelled - March mailing"
    text = text_of(message)
    assert re.search(r"^  Cancelled +600$", text, re.MULTILINE)
    assert "Usage" not in text  # no cost, no tokens: no usage section


def test_expired_job_and_files_not_written_yet() -> None:
    job = job_json(status="expired", result_files={}, finished=False)
    message = compose(job)
    assert message["Subject"].startswith("Batchyard job job_ab12 expired: 998 succeeded, 2 failed")
    assert "The result files were not written yet" in text_of(message)


def test_a_file_whose_size_is_unknown_is_still_listed() -> None:
    job = job_json(result_files={"results.jsonl": {}, "artifacts.zip": {"rows": 1}})
    text = text_of(compose(job))
    assert (
        f"  results.jsonl: Results, one JSON line per succeeded item\n    {PUBLIC}/api/v1/jobs/job_ab12/results.jsonl"
        in text
    )
    assert "artifacts.zip (1 file): The files the handler saved, zipped" in text
    assert "results.csv" not in text and "errors.jsonl" not in text


def test_without_a_public_url_the_email_says_how_to_download_with_the_cli() -> None:
    message = compose(job_json(), public_url=None)
    text, page = text_of(message), html_of(message)
    assert "http" not in text and "href" not in page
    assert "Open the job" not in text
    assert "  batchyard jobs download job_ab12 -o job_ab12\n" in text
    assert "add --url with the server's address" in text
    assert "results.jsonl (998 rows, 123.5 KB)" in text  # the files are still listed, without links
    assert "signed in" not in text


def test_a_public_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        compose(job_json(), public_url="javascript:alert(1)")
    assert f"{PUBLIC}/jobs/job_ab12" in text_of(compose(job_json(), public_url=PUBLIC + "/"))


def test_only_a_finished_job_gets_an_email() -> None:
    with pytest.raises(ValueError, match="only a finished job"):
        compose(job_json(status="running"))


def test_html_escapes_a_hostile_description_and_error() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & <a href="http://evil.example">win</a>'
    job = job_json(status="failed", description=hostile, error={"message": "<b>boom</b> & 'quotes'"})
    message = reparsed(compose(job))
    page = html_of(message)
    assert "<script" not in page and "<img" not in page and 'evil.example"' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert html.escape("<b>boom</b> & 'quotes'", quote=True) in page
    assert all(href.startswith(PUBLIC) for href in re.findall(r'href="([^"]*)"', page))
    assert hostile in text_of(message)  # the text part shows it as typed


def test_a_description_with_newlines_cannot_inject_headers() -> None:
    description = "March\r\nBcc: victim@example.com\r\nX-Evil: 1\n\nfake body\u2028Reply-To: a@evil.example"
    message = reparsed(compose(job_json(description=description)))
    assert message["Bcc"] is None and message["X-Evil"] is None and message["Reply-To"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["Subject"].endswith("- March Bcc: victim@example.com X-Evil: 1 fake body Reply-To: a@evil.example")
    assert "victim@example.com" not in message.get_all("To", [])
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_a_long_description_is_cut_in_the_subject_and_non_ascii_survives() -> None:
    message = reparsed(compose(job_json(description="Rechnungen für März " + "x" * 200)))
    subject = message["Subject"]
    assert subject.startswith("Batchyard job job_ab12 completed: 998 succeeded, 2 failed - Rechnungen für März x")
    assert subject.endswith("…") and len(subject) < 160
    assert "Rechnungen für März " + "x" * 200 in text_of(message)


def test_a_sender_with_a_newline_is_refused() -> None:
    with pytest.raises(ValueError):
        compose_job_email(job_json(), public_url=None, sender="a@example.com\r\nBcc: b@example.com")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace+jobs@Example.COM ", "Ada.Lovelace+jobs@example.com"),
        ("ops@localhost", "ops@localhost"),
        ("o'brien@mail.example.co.uk", "o'brien@mail.example.co.uk"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("a@example.com.", "a@example.com"),
        ("ada@example.com\n", "ada@example.com"),  # a trailing newline from a file or a form is trimmed
    ],
)
def test_valid_addresses_are_kept_normalized(given: str, kept: str) -> None:
    assert validate_email_address(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "empty"),
        ("ada", "exactly one @"),
        ("ada@@example.com", "exactly one @"),
        ("a@b@example.com", "exactly one @"),
        ("@example.com", "a name before the @"),
        ("ada@", "a name before the @"),
        ("ada lovelace@example.com", "spaces"),
        ("ada@example.com\r\nBcc: x@example.com", "spaces or control"),
        ("Ada <ada@example.com>", "spaces"),
        ("<ada@example.com>", "before the @ must be"),
        ("ada..x@example.com", "double dots"),
        (".ada@example.com", "before the @ must be"),
        ("ada@example", "a name with a dot"),
        ("ada@-example.com", "a name with a dot"),
        ("ada@exa_mple.com", "a name with a dot"),
        ("ada@10.0.0.1", "a name with a dot"),
        ("ada@[127.0.0.1]", "a name with a dot"),
        ("x" * 65 + "@example.com", "at most 64"),
        ("a@" + ".".join(c * 63 for c in "bcde") + ".com", "longer than 254"),
    ],
)
def test_invalid_addresses_say_what_is_wrong(given: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        validate_email_address(given)


def test_smtp_settings_defaults_follow_the_tls_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_PASSWORD", "EMAIL_FROM", "PUBLIC_URL"):
        monkeypatch.delenv(f"BATCHYARD_{name}", raising=False)
    default = Settings()
    assert (default.smtp_host, default.smtp_tls, default.smtp_port) == (None, "starttls", 587)
    assert not default.email_enabled and default.email_from.startswith("batchyard@")

    monkeypatch.setenv("BATCHYARD_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("BATCHYARD_SMTP_TLS", "tls")
    monkeypatch.setenv("BATCHYARD_SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("BATCHYARD_PUBLIC_URL", "https://batchyard.example.com/")
    tls = Settings()
    assert (tls.smtp_port, tls.email_enabled, tls.public_url) == (465, True, "https://batchyard.example.com")
    assert "hunter2" not in repr(tls) and "hunter2" not in str(tls.model_dump())
    monkeypatch.setenv("BATCHYARD_SMTP_TLS", "none")
    assert Settings().smtp_port == 25
    monkeypatch.setenv("BATCHYARD_SMTP_PORT", "2525")
    assert Settings().smtp_port == 2525


@pytest.mark.parametrize(
    ("field", "value"),
    [("smtp_tls", "ssl"), ("public_url", "ftp://x.example"), ("email_from", "nobody"), ("smtp_port", 0)],
)
def test_bad_smtp_settings_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})
