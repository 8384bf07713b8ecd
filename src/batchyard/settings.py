"""One typed settings object for every process: environment prefix ``BATCHYARD_``, CLI flags override it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from batchyard.core.notifications import DEFAULT_RETRY_SCHEDULE_SECONDS

DEFAULT_DATA_DIR = Path("~/.batchyard")
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_CLAIM_CHUNK = 1000
DEFAULT_FLUSH_INTERVAL_MS = 50
DEFAULT_FLUSH_MAX_ITEMS = 2000
DEFAULT_PROGRESS_INTERVAL_MS = 250
DEFAULT_POLL_INTERVAL_MS = 250
DEFAULT_MAINTENANCE_INTERVAL_MS = 500
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_INPUT_ERRORS = 100
DEFAULT_PRUNE_INTERVAL_SECONDS = 300.0
DEFAULT_PRUNE_CHUNK_ROWS = 2000
DEFAULT_OPENAI_WINDOW_SECONDS = 24 * 3600.0  # OpenAI's only completion window, "24h"
DEFAULT_OPENAI_MAX_BATCH_REQUESTS = 50_000  # OpenAI's limits for one batch
DEFAULT_OPENAI_MAX_BATCH_BYTES = 200 * 1024 * 1024
DEFAULT_UPSTREAM_CONCURRENCY = 256
DEFAULT_UPSTREAM_TIMEOUT_SECONDS = 300.0
DEFAULT_UPSTREAM_MAX_RETRIES = 5
DEFAULT_RETRY_WAIT_MAX_SECONDS = 120.0
SmtpTls = Literal["none", "starttls", "tls"]
DEFAULT_SMTP_TLS: SmtpTls = "starttls"  # never plain text unless the operator says so (a local relay, a trusted net)
SMTP_PORTS = {"none": 25, "starttls": 587, "tls": 465}  # the port each TLS mode is usually served on
DEFAULT_SMTP_TIMEOUT_SECONDS = 30.0
DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 10.0
DEFAULT_OUTBOX_POLL_INTERVAL_MS = 500
DEFAULT_OUTBOX_LEASE_SECONDS = 120.0
DEFAULT_OUTBOX_DRAIN_SECONDS = 10.0  # long enough for the first retry (5 s +-20 %)


class Settings(BaseSettings):
    """Settings shared by the CLI, the worker and the library; each field reads ``BATCHYARD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="BATCHYARD_", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where the SQLite database, uploads and results live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default: SQLite in data_dir."
    )
    auto_migrate: bool = Field(True, description="Upgrade the schema when a worker or server starts.")
    lease_seconds: float = Field(DEFAULT_LEASE_SECONDS, gt=0, description="How long a claim holds its items.")
    heartbeat_interval_seconds: float | None = Field(
        None, gt=0, description="How often a worker extends its leases (default: a third of lease_seconds)."
    )
    claim_chunk: int = Field(DEFAULT_CLAIM_CHUNK, ge=1, le=100_000, description="Items claimed per statement.")
    flush_interval_ms: int = Field(DEFAULT_FLUSH_INTERVAL_MS, ge=1, description="Completion flush period.")
    flush_max_items: int = Field(DEFAULT_FLUSH_MAX_ITEMS, ge=1, description="Flush early at this many results.")
    progress_interval_ms: int = Field(
        DEFAULT_PROGRESS_INTERVAL_MS, ge=10, description="Shortest time between writes of items' ctx.progress reports."
    )
    poll_interval_ms: int = Field(DEFAULT_POLL_INTERVAL_MS, ge=10, description="Idle poll when no wake-up came.")
    maintenance_interval_ms: int = Field(DEFAULT_MAINTENANCE_INTERVAL_MS, ge=10, description="Maintenance period.")
    shutdown_grace_seconds: float = Field(30.0, ge=0, description="In-flight items get this long on SIGTERM.")
    worker_concurrency: int = Field(
        256, ge=1, description="Items in flight per handler in a worker process (sync handlers: their threads)."
    )
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1, description="Default attempts per item.")
    backoff_base_seconds: float = Field(1.0, ge=0, description="First retry delay; doubles each attempt.")
    backoff_max_seconds: float = Field(300.0, ge=0, description="Cap on the retry delay.")
    max_line_bytes: int = Field(DEFAULT_MAX_LINE_BYTES, ge=64, description="Longest accepted input line.")
    max_input_errors: int = Field(DEFAULT_MAX_INPUT_ERRORS, ge=1, description="Input errors reported in full.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Largest file upload over HTTP.")
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest JSON request body.")
    sample_interval_seconds: float = Field(2.0, gt=0, description="Progress sample period per running job.")
    worker_stale_seconds: float = Field(60.0, gt=0, description="A worker unseen this long counts as gone.")
    resource_retry_base_seconds: float = Field(
        1.0, ge=0, description="After a worker resource fails to start, wait this long before trying again; doubles."
    )
    resource_retry_max_seconds: float = Field(60.0, ge=0, description="Cap on the wait between resource starts.")
    max_rescues: int = Field(
        6,
        ge=2,
        le=20,
        description="Crashes an item may be in flight in before it is set aside as poison. "
        "Not attempts: an item merely in flight when its worker died gets its attempt back.",
    )

    openai_window_seconds: float = Field(
        DEFAULT_OPENAI_WINDOW_SECONDS,
        gt=0,
        description="An OpenAI batch's completion window (its '24h'); unfinished requests expire after it.",
    )
    openai_max_batch_requests: int = Field(
        DEFAULT_OPENAI_MAX_BATCH_REQUESTS, ge=1, description="Most requests in one OpenAI batch input file."
    )
    openai_max_batch_bytes: int = Field(
        DEFAULT_OPENAI_MAX_BATCH_BYTES, ge=1, description="Largest OpenAI batch input file, in bytes."
    )

    upstream_url: str | None = Field(
        None,
        description="Default upstream of the openai handler: an OpenAI-compatible base URL ending in /v1 "
        "(e.g. http://127.0.0.1:8001/v1; a URL with no path gets /v1).",
    )
    upstream_api_key: SecretStr | None = Field(
        None, description="Bearer key sent to the default upstream; never logged nor shown."
    )
    upstreams_file: Path | None = Field(
        None, description="TOML file of per-model routes: model -> upstream (base URL, key, limits) and prices."
    )
    upstream_concurrency: int = Field(
        DEFAULT_UPSTREAM_CONCURRENCY, ge=1, description="Requests in flight per upstream and worker, by default."
    )
    upstream_timeout_seconds: float = Field(
        DEFAULT_UPSTREAM_TIMEOUT_SECONDS, gt=0, description="Longest wait for one upstream answer."
    )
    upstream_max_retries: int = Field(
        DEFAULT_UPSTREAM_MAX_RETRIES,
        ge=0,
        description="Retries of a request (429, 5xx, timeout, connection error) inside one attempt of its item.",
    )
    upstream_retry_wait_max_seconds: float = Field(
        DEFAULT_RETRY_WAIT_MAX_SECONDS,
        ge=0,
        description="Longest Retry-After waited inside an attempt; a longer one re-queues the item until then.",
    )
    allow_private_urls: bool = Field(
        False,
        description="Let the http handler and webhooks reach loopback, private and link-local addresses (cloud "
        "metadata addresses stay refused).",
    )
    allowed_private_networks: list[str] = Field(
        default_factory=list,
        description='Networks (CIDR, a JSON list: ["10.1.0.0/16"]) the http handler and webhooks may reach even '
        "when private addresses are refused; cloud metadata addresses stay refused.",
    )
    webhook_timeout_seconds: float = Field(
        DEFAULT_WEBHOOK_TIMEOUT_SECONDS, gt=0, le=300, description="Longest wait for a webhook receiver's answer."
    )
    webhook_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_SECONDS),
        min_length=1,
        max_length=50,
        description="Waits after each failed notification attempt (a JSON list, each varied by +-20 %); given "
        "up after the last. Default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over about 27.6 h).",
    )
    outbox_poll_interval_ms: int = Field(
        DEFAULT_OUTBOX_POLL_INTERVAL_MS, ge=10, description="How often a worker looks for notifications to send."
    )
    outbox_lease_seconds: float = Field(
        DEFAULT_OUTBOX_LEASE_SECONDS,
        gt=0,
        description="How long a process holds a notification it is sending (another takes it over after).",
    )
    outbox_drain_seconds: float = Field(
        DEFAULT_OUTBOX_DRAIN_SECONDS,
        ge=0,
        description="submit --wait and Job.wait's own worker: how long it keeps sending its job's notifications "
        "before it exits.",
    )

    @field_validator("upstream_url")
    @classmethod
    def _upstream_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:8001/v1")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r}: a base URL has no query or fragment")
        return url if parts.path else url + "/v1"

    @field_validator("webhook_retry_schedule_seconds")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if any(not 0 <= step <= 7 * 86400 for step in value):
            raise ValueError("each wait is 0 to 604800 seconds")
        return value

    @field_validator("allowed_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network such as 10.1.0.0/16") from None
        return value

    @property
    def has_upstream(self) -> bool:
        """Whether the openai handler has anywhere to send requests (a default upstream or a routes file)."""
        return self.upstream_url is not None or self.upstreams_file is not None

    job_retention_days: float | None = Field(
        None,
        gt=0,
        description="Delete finished jobs (completed, failed, cancelled, expired) this many days after they "
        "finished, with their items, events, samples, result files and artifacts (maintenance, in chunks). "
        "Default: keep them forever.",
    )
    prune_interval_seconds: float = Field(
        DEFAULT_PRUNE_INTERVAL_SECONDS, gt=0, description="How often maintenance looks for jobs past retention."
    )
    prune_chunk_rows: int = Field(
        DEFAULT_PRUNE_CHUNK_ROWS, ge=1, le=100_000, description="Rows deleted per transaction when pruning."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="serve and worker logs: text, or json (one object per line, with job and item ids)."
    )
    metrics_public: bool = Field(
        False, description="Serve GET /metrics without a key (default: an admin key; metrics cover every owner)."
    )

    smtp_host: str | None = Field(
        None,
        description="SMTP server that sends notification emails (jobs' notify_emails); unset: no email is sent, "
        "and a job that asks for one says so.",
    )
    smtp_port: int = Field(
        SMTP_PORTS[DEFAULT_SMTP_TLS],
        ge=1,
        le=65535,
        description="Its port; default by smtp_tls: 587 for starttls, 465 for tls, 25 for none.",
    )
    smtp_tls: SmtpTls = Field(
        DEFAULT_SMTP_TLS,
        description="starttls (upgrade, and refuse a server that cannot), tls (TLS from the first byte) or none "
        "(plain text: a relay on this machine or a trusted network). Certificates are verified.",
    )
    smtp_username: str | None = Field(None, description="Log in to the SMTP server as this user (unset: no login).")
    smtp_password: SecretStr | None = Field(None, description="Its password; never logged nor shown.")
    smtp_ca_file: Path | None = Field(
        None,
        description="PEM file of the certificates to trust for the SMTP server instead of the system's (a private CA).",
    )
    smtp_timeout_seconds: float = Field(
        DEFAULT_SMTP_TIMEOUT_SECONDS, gt=0, description="Longest wait for the SMTP server at each step."
    )
    email_from: str = Field(
        default_factory=lambda: f"batchyard@{_hostname()}",
        description="From address of notification emails, e.g. 'Batchyard <batchyard@example.com>' "
        "(default: batchyard@ this machine's host name).",
    )
    public_url: str | None = Field(
        None,
        description="Where people reach this server (e.g. https://batchyard.example.com), for links in emails; "
        "unset: emails say how to download with the CLI instead.",
    )

    @model_validator(mode="before")
    @classmethod
    def _smtp_port_by_tls(cls, data: Any) -> Any:
        """The port follows the TLS mode unless it is set: BATCHYARD_SMTP_TLS=tls alone means port 465."""
        if isinstance(data, dict) and data.get("smtp_port") in (None, ""):
            tls = data.get("smtp_tls") or DEFAULT_SMTP_TLS
            if tls in SMTP_PORTS:
                data = {**data, "smtp_port": SMTP_PORTS[tls]}
        return data

    @field_validator("smtp_host", "smtp_username")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @field_validator("email_from")
    @classmethod
    def _email_from(cls, value: str) -> str:
        from email.utils import parseaddr

        _, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError(f"{value!r} is not a From address such as batchyard@example.com")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not a base URL such as https://batchyard.example.com")
        return url

    @property
    def email_enabled(self) -> bool:
        """Whether notification emails can be sent (an SMTP host is set)."""
        return self.smtp_host is not None

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'batchyard.db'}"

    @property
    def heartbeat_seconds(self) -> float:
        return self.heartbeat_interval_seconds or self.lease_seconds / 3


def _hostname() -> str:
    import socket

    return socket.gethostname() or "localhost"
