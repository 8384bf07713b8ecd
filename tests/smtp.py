"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests that send email.

Use the ``smtp_server`` fixture (registered in tests/conftest.py) for a plain server, or :func:`start_smtp_server`
for STARTTLS, implicit TLS or AUTH; point Batchyard at it with :meth:`SmtpServer.settings`::

    def test_job_email(smtp_server: SmtpServer) -> None:
        settings = smtp_server.settings(public_url="http://127.0.0.1:18200")
        ...  # run a job with notify_emails=["ada@example.com"]
        [received] = smtp_server.wait_for_messages(1)
        assert received.rcpt_tos == ["ada@example.com"] and "completed" in received.message["Subject"]

Refusals, to test retries: ``smtp_server.refuse_recipients["nobody@example.com"] = "550 5.1.1 No such user"``
answers that recipient's RCPT with the reply; ``smtp_server.data_reply = "421 4.3.2 Try again later"`` answers
DATA with it (the message is not kept). Both can change between sends.

The TLS modes use the self-signed certificate in tests/data/smtp (for 127.0.0.1 and localhost, valid until 2126,
made with ``openssl req -x509``); :data:`CA_FILE` is what a client must trust (``BATCHYARD_SMTP_CA_FILE``).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from batchyard.settings import Settings

CERT_DIR = Path(__file__).parent / "data" / "smtp"
CA_FILE = CERT_DIR / "cert.pem"
KEY_FILE = CERT_DIR / "key.pem"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted: the envelope, the parsed message, and how it came."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    tls: bool  # over STARTTLS or implicit TLS
    login: str | None  # the user it logged in as, if it did

    def part(self, subtype: Literal["plain", "html"]) -> str:
        """The text or HTML body, decoded, with SMTP's CRLF line ends made \\n."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part in {self.message['Subject']!r}"
        return cast(str, body.get_content()).replace("\r\n", "\n")


@dataclass
class _Handler:
    server: SmtpServer

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.server.refuse_recipients.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.data_reply is not None:
            return self.server.data_reply
        data = envelope.original_content or b""
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=message_from_bytes(data, policy=policy.default),
            tls=session.ssl is not None or _over_tls(server),
            login=session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        )
        with self.server.lock:
            self.server.messages.append(received)
        return "250 Message accepted"


def _over_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


@dataclass
class SmtpServer:
    """A running aiosmtpd server on 127.0.0.1 and what it received."""

    port: int
    tls: Literal["none", "starttls", "tls"]
    users: dict[str, str]
    host: str = HOST
    messages: list[ReceivedMessage] = field(default_factory=list)
    refuse_recipients: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self, **overrides: Any) -> Settings:
        """Batchyard settings that send to this server (its TLS mode, trusting its certificate)."""
        values: dict[str, Any] = {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_tls": self.tls,
            "smtp_ca_file": CA_FILE if self.tls != "none" else None,
            "smtp_timeout_seconds": 5.0,
            "email_from": "Batchyard <batchyard@example.com>",
        }
        return Settings(**{**values, **overrides})

    def env(self) -> dict[str, str]:
        """The same as ``BATCHYARD_*`` environment variables, for a server or worker in a subprocess."""
        env = {
            "BATCHYARD_SMTP_HOST": self.host,
            "BATCHYARD_SMTP_PORT": str(self.port),
            "BATCHYARD_SMTP_TLS": self.tls,
            "BATCHYARD_SMTP_TIMEOUT_SECONDS": "5",
            "BATCHYARD_EMAIL_FROM": "Batchyard <batchyard@example.com>",
        }
        if self.tls != "none":
            env["BATCHYARD_SMTP_CA_FILE"] = str(CA_FILE)
        return env

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """The first ``count`` messages received, waiting up to ``timeout`` seconds for them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages[:count])
                got = len(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError(f"the SMTP server received {got} message(s) in {timeout:g}s, expected {count}")
            time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return cast(int, probe.getsockname()[1])


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CA_FILE, KEY_FILE)
    return context


@contextmanager
def start_smtp_server(
    tls: Literal["none", "starttls", "tls"] = "none", *, users: dict[str, str] | None = None
) -> Iterator[SmtpServer]:
    """An SMTP server on a free loopback port for the duration of the block.

    ``tls``: ``none`` (plain, no STARTTLS offered), ``starttls`` (offered and required before MAIL) or ``tls``
    (TLS from the first byte). ``users`` (name -> password) turns on AUTH: with ``none`` or ``starttls`` the
    server, like real ones, offers it only over TLS and requires it before MAIL; with ``tls`` it offers it but
    accepts mail without (aiosmtpd's limits)."""
    server = SmtpServer(port=free_port(), tls=tls, users=dict(users or {}))

    def authenticate(smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and server.users.get(auth_data.login.decode()) == (
            auth_data.password.decode()
        )
        # handled=False: aiosmtpd answers (235, or 535 for a wrong password) as a real server does
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    kwargs: dict[str, Any] = {"server_hostname": "localhost", "auth_require_tls": True}
    if tls == "starttls":
        kwargs.update(tls_context=_server_context(), require_starttls=True)
    elif tls == "tls":
        kwargs.update(ssl_context=_server_context())
    if users:
        # aiosmtpd cannot tell an implicit-TLS connection from a plain one: it offers AUTH there only when told
        # AUTH needs no TLS, and then it must not require AUTH (it warns, and every warning fails a test).
        kwargs.update(authenticator=authenticate, auth_required=tls != "tls", auth_require_tls=tls != "tls")
    controller = Controller(_Handler(server), hostname=HOST, port=server.port, **kwargs)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
