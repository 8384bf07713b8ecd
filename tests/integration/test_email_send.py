"""Sending a job's email to a real SMTP server on loopback (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH,
refusals, and a server that is down or silent — and what each failure means for a retry."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from batchyard.errors import EmailDeliveryError
from batchyard.notify import EMAIL_DISABLED_MESSAGE, compose_job_email, send_email
from batchyard.settings import Settings
from tests.smtp import CA_FILE, HOST, SmtpServer, free_port, start_smtp_server

JOB: dict[str, Any] = {
    "id": "job_ab12",
    "handler": "thumbnail",
    "status": "completed",
    "description": "Rechnungen für März",
    "counts": {"total": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "skipped": 0},
    "cost": 0.5,
    "usage": {},
    "error": None,
    "started_at": 1_796_112_000.0,
    "finished_at": 1_796_112_065.0,
    "result_files": {"results.jsonl": {"bytes": 120, "rows": 2}, "errors.jsonl": {"bytes": 90, "rows": 1}},
}
SENDER = "Batchyard <batchyard@example.com>"


def message() -> Any:
    return compose_job_email(JOB, public_url="http://127.0.0.1:18200", sender=SENDER)


def test_a_job_email_arrives_over_plain_smtp(smtp_server: SmtpServer) -> None:
    refused = send_email(message(), ["ada@example.com", "bob@example.com"], smtp_server.settings())

    assert refused == {}
    [received] = smtp_server.wait_for_messages(1)
    assert received.mail_from == "batchyard@example.com"
    assert received.rcpt_tos == ["ada@example.com", "bob@example.com"]
    assert not received.tls and received.login is None
    got = received.message
    assert got["Subject"] == "Batchyard job job_ab12 completed: 2 succeeded, 1 failed - Rechnungen für März"
    assert got["To"] == "ada@example.com, bob@example.com"
    assert got["From"] == SENDER and got["Message-ID"] and got["Date"]
    text = received.part("plain")
    assert "Duration  1m 05s" in text and "http://127.0.0.1:18200/api/v1/jobs/job_ab12/errors.jsonl" in text
    assert '<a href="http://127.0.0.1:18200/jobs/job_ab12"' in received.part("html")


def test_the_callers_message_is_left_as_it_was(smtp_server: SmtpServer) -> None:
    composed = message()
    send_email(composed, ["ada@example.com"], smtp_server.settings())
    send_email(composed, ["bob@example.com"], smtp_server.settings())
    assert composed["To"] is None  # a retry or another batch of recipients starts from the same message
    first, second = smtp_server.wait_for_messages(2)
    assert (first.message["To"], second.message["To"]) == ("ada@example.com", "bob@example.com")


def test_duplicate_and_blank_recipients_get_one_copy(smtp_server: SmtpServer) -> None:
    send_email(message(), ["ada@example.com", " ada@example.com ", "", "bob@example.com"], smtp_server.settings())
    [received] = smtp_server.wait_for_messages(1)
    assert received.rcpt_tos == ["ada@example.com", "bob@example.com"]


def test_starttls_with_login() -> None:
    with start_smtp_server("starttls", users={"mailer": "s3cret"}) as server:
        send_email(message(), ["ada@example.com"], server.settings(smtp_username="mailer", smtp_password="s3cret"))
        [received] = server.wait_for_messages(1)
    assert received.tls and received.login == "mailer"
    assert received.rcpt_tos == ["ada@example.com"]


def test_implicit_tls_with_login() -> None:
    with start_smtp_server("tls", users={"mailer": "s3cret"}) as server:
        assert server.settings().smtp_tls == "tls"
        send_email(message(), ["ada@example.com"], server.settings(smtp_username="mailer", smtp_password="s3cret"))
        [received] = server.wait_for_messages(1)
    assert received.tls and received.login == "mailer"


def test_a_wrong_password_is_final_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with start_smtp_server("starttls", users={"mailer": "s3cret"}) as server:
        settings = server.settings(smtp_username="mailer", smtp_password="wrong-Pa55word")
        with pytest.raises(EmailDeliveryError) as caught:
            send_email(message(), ["ada@example.com"], settings)
        assert server.messages == []
    error = caught.value
    assert not error.retryable and error.smtp_code == 535
    assert "535" in error.message
    assert "wrong-Pa55word" not in str(error.to_dict()) and "wrong-Pa55word" not in caplog.text


def test_an_untrusted_certificate_is_refused_for_good() -> None:
    with start_smtp_server("starttls") as server:
        with pytest.raises(EmailDeliveryError, match="not trusted") as caught:
            send_email(message(), ["ada@example.com"], server.settings(smtp_ca_file=None))
        assert server.messages == []
    assert not caught.value.retryable and "BATCHYARD_SMTP_CA_FILE" in caught.value.message


def test_starttls_mode_refuses_a_server_without_starttls(smtp_server: SmtpServer) -> None:
    """Never a silent downgrade to plain text: the operator must say smtp_tls=none."""
    with pytest.raises(EmailDeliveryError, match="does not offer STARTTLS") as caught:
        send_email(message(), ["ada@example.com"], smtp_server.settings(smtp_tls="starttls"))
    assert not caught.value.retryable
    assert smtp_server.messages == []


def test_tls_mode_against_a_plain_port_fails_clearly(smtp_server: SmtpServer) -> None:
    with pytest.raises(EmailDeliveryError, match="TLS with SMTP server") as caught:
        send_email(message(), ["ada@example.com"], smtp_server.settings(smtp_tls="tls"))
    assert not caught.value.retryable and "port 465" in caught.value.message


def test_a_login_is_refused_over_plain_text_to_a_remote_server() -> None:
    settings = Settings(
        smtp_host="smtp.example.com", smtp_tls="none", smtp_username="mailer", smtp_password=SecretStr("s3cret")
    )
    with pytest.raises(EmailDeliveryError, match="password unencrypted") as caught:
        send_email(message(), ["ada@example.com"], settings)
    assert not caught.value.retryable


def test_a_server_that_offers_auth_only_over_tls_refuses_a_plain_login() -> None:
    with start_smtp_server("none", users={"mailer": "s3cret"}) as server:
        settings = server.settings(smtp_username="mailer", smtp_password="s3cret")
        with pytest.raises(EmailDeliveryError, match="AUTH") as caught:
            send_email(message(), ["ada@example.com"], settings)
    assert not caught.value.retryable


def test_one_refused_recipient_does_not_stop_the_others(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_recipients["nobody@example.com"] = "550 5.1.1 No such user"
    refused = send_email(message(), ["ada@example.com", "nobody@example.com"], smtp_server.settings())

    assert refused == {"nobody@example.com": (550, "5.1.1 No such user")}
    [received] = smtp_server.wait_for_messages(1)
    assert received.rcpt_tos == ["ada@example.com"]
    assert "nobody@example.com (550 5.1.1 No such user)" in caplog.text


def test_550_for_every_recipient_is_final(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_recipients["nobody@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(EmailDeliveryError) as caught:
        send_email(message(), ["nobody@example.com"], smtp_server.settings())
    error = caught.value
    assert not error.retryable and error.smtp_code == 550
    assert error.refused == {"nobody@example.com": (550, "5.1.1 No such user")}
    assert "refused every recipient (nobody@example.com: 550 5.1.1 No such user)" in error.message
    assert smtp_server.messages == []


def test_a_temporary_refusal_of_every_recipient_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_recipients["full@example.com"] = "452 4.2.2 Mailbox full"
    with pytest.raises(EmailDeliveryError) as caught:
        send_email(message(), ["full@example.com"], smtp_server.settings())
    assert caught.value.retryable and caught.value.smtp_code == 452


def test_421_is_retried_and_the_retry_delivers(smtp_server: SmtpServer) -> None:
    smtp_server.data_reply = "421 4.3.2 Service shutting down, try again later"
    with pytest.raises(EmailDeliveryError) as caught:
        send_email(message(), ["ada@example.com"], smtp_server.settings())
    assert caught.value.retryable and caught.value.smtp_code == 421
    assert smtp_server.messages == []

    smtp_server.data_reply = None
    send_email(message(), ["ada@example.com"], smtp_server.settings())
    assert smtp_server.wait_for_messages(1)[0].rcpt_tos == ["ada@example.com"]


def test_a_5xx_answer_to_the_message_is_final(smtp_server: SmtpServer) -> None:
    smtp_server.data_reply = "554 5.7.1 Message rejected as spam"
    with pytest.raises(EmailDeliveryError, match=r"554 5\.7\.1 Message rejected as spam") as caught:
        send_email(message(), ["ada@example.com"], smtp_server.settings())
    assert not caught.value.retryable and caught.value.smtp_code == 554


def test_a_server_that_is_down_is_retried() -> None:
    settings = Settings(smtp_host=HOST, smtp_port=free_port(), smtp_tls="none", smtp_timeout_seconds=2)
    with pytest.raises(EmailDeliveryError, match="cannot reach SMTP server") as caught:
        send_email(message(), ["ada@example.com"], settings)
    assert caught.value.retryable and caught.value.smtp_code is None


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung SMTP server)."""
    listener = socket.create_server((HOST, 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_silent_server_times_out_and_is_retried(silent_server: int) -> None:
    settings = Settings(smtp_host=HOST, smtp_port=silent_server, smtp_tls="none", smtp_timeout_seconds=0.5)
    with pytest.raises(EmailDeliveryError, match=r"did not answer within 0\.5s") as caught:
        send_email(message(), ["ada@example.com"], settings)
    assert caught.value.retryable


def test_without_an_smtp_host_nothing_is_sent() -> None:
    with pytest.raises(EmailDeliveryError) as caught:
        send_email(message(), ["ada@example.com"], Settings(smtp_host=None))
    assert caught.value.message == EMAIL_DISABLED_MESSAGE and not caught.value.retryable


def test_no_recipients_is_an_error(smtp_server: SmtpServer) -> None:
    with pytest.raises(EmailDeliveryError, match="no recipients") as caught:
        send_email(message(), [" "], smtp_server.settings())
    assert not caught.value.retryable


def test_the_outbox_form_sends_to_the_jobs_notify_emails_from_the_configured_sender() -> None:
    """``compose_job_email(job, public_url=...)`` then ``send_email(message, settings)``: To comes from the job's
    notify_emails, From and Message-ID from BATCHYARD_EMAIL_FROM."""
    job = {**JOB, "notify_emails": ["ada@example.com", "Bob@Example.com", "not an address"]}
    composed = compose_job_email(job, public_url=None)
    assert composed["From"] is None and composed["To"] == "ada@example.com, Bob@example.com"
    with start_smtp_server("starttls") as server:
        send_email(composed, server.settings(email_from="Jobs <jobs@batch.example.org>"))
        [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ["ada@example.com", "Bob@example.com"] and received.tls
    assert received.mail_from == "jobs@batch.example.org"
    assert received.message["From"] == "Jobs <jobs@batch.example.org>"
    assert received.message["Message-ID"].endswith("@batch.example.org>")


def test_send_email_needs_settings() -> None:
    with pytest.raises(TypeError, match="settings"):
        send_email(message(), ["ada@example.com"])


def test_the_fixture_environment_configures_a_server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """SmtpServer.env() is what a `batchyard serve` or `worker` subprocess needs to reach the test server."""
    with start_smtp_server("starttls") as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        assert (settings.smtp_port, settings.smtp_tls, settings.smtp_ca_file) == (
            server.port,
            "starttls",
            CA_FILE,
        )
        send_email(message(), ["ada@example.com"], settings)
        assert server.wait_for_messages(1)[0].tls
