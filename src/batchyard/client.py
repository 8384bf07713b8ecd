"""A small typed client for Batchyard's REST API (``/api/v1/``), over httpx.

>>> from batchyard.client import Client
>>> with Client("http://127.0.0.1:8000", key="by_...") as api:
...     upload = api.upload_file("items.jsonl")
...     job = api.create_job("echo", input_file_id=upload.id, wait=30)
...     job.status
'completed'

Answers are the wire schema's models (:mod:`batchyard.wire`: ``JobOut``, ``FileOut``, ``EventOut``,
``HandlerOut``, ``Page``), the same the server serializes; ``model_dump(mode="json")`` gives the JSON back.

Every failure is a :class:`batchyard.errors.BatchyardError`: :class:`ApiError` carries the server's error
(``{"error": {"message", "type", "param", "code"}}``) and its HTTP status; :class:`ServerUnreachable` says which URL
could not be reached. The API key is sent only in the ``Authorization`` header and never appears in a message,
a ``repr`` or a log line.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from batchyard import __version__
from batchyard.errors import ApiError, ConfigError, ServerUnreachable

if TYPE_CHECKING:  # pydantic is imported when a first answer is parsed, not for the CLI's every start
    from batchyard.wire import (
        BulkOut,
        DeliveryOut,
        ErrorGroupOut,
        EventOut,
        FileOut,
        HandlerOut,
        HistoryOut,
        JobOut,
        NewWebhookOut,
        NotificationOut,
        Page,
        QuotaOut,
        RedeliveryOut,
        RetryOut,
        WebhookOut,
        WebhookSecretOut,
    )

DEFAULT_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_WAIT_SECONDS = 300  # the server's limit on ``?wait=``
BODY_EXCERPT_CHARS = 200
DOWNLOAD_CHUNK_BYTES = 1 << 20
UPLOAD_TIMEOUT_SECONDS = 300.0  # per read/write of a large upload or download, not for the whole transfer
EVENTS_PAGE = 500
BULK_TIMEOUT_SECONDS = 600.0  # up to 10,000 moves in one call


def normalize_url(url: str) -> str:
    """``http://host:port`` from what a user typed (a trailing ``/`` or ``/api/v1`` is dropped)."""
    cleaned = url.strip().rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if cleaned.endswith(suffix):
            cleaned = cleaned[: -len(suffix)]
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"server URL {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000", param="url")
    return cleaned


class _Unsized:
    """A pipe (stdin) for httpx: without ``fileno`` it is sent chunked, not with a length taken from fstat."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, ValueError):
        return False


def _segment(value: str) -> str:
    return quote(value, safe="")


class Client:
    """A connection to one Batchyard server, authenticated with one API key."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = normalize_url(url)
        headers = {"User-Agent": f"batchyard/{__version__}", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing -----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        """Send a request; an error answer raises :class:`ApiError`, no answer :class:`ServerUnreachable`."""
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_SECONDS)
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                f"{method} {path}: the server at {self.url} answered with "
                f"something that is not JSON; is this a Batchyard server?",
            ) from None

    def _unreachable(self, exc: httpx.TransportError) -> ServerUnreachable:
        if isinstance(exc, httpx.TimeoutException):
            reason = "no answer in time"
        else:
            reason = str(exc).strip() or type(exc).__name__
            if "[Errno" in reason:  # "[Errno 111] Connection refused" -> "connection refused"
                reason = reason.split("]", 1)[1].strip().lower()
        return ServerUnreachable(f"could not reach the Batchyard server at {self.url}: {reason}")

    # -- the caller ---------------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """Who the key belongs to: ``{"owner", "role", "via"}``."""
        result: dict[str, Any] = self._json("GET", "/api/v1/me")
        return result

    def handlers(self) -> list[HandlerOut]:
        """Handlers the server knows, each with how many live workers run it."""
        from batchyard.wire import HandlerOut

        return [HandlerOut.model_validate(h) for h in self._json("GET", "/api/v1/handlers")["data"]]

    def has_live_worker_for(self, handler: str) -> bool:
        return any(h.name == handler and h.live_workers for h in self.handlers())

    # -- quotas -------------------------------------------------------------------------------------------------

    def get_quota(self, owner: str, *, project: str | None = None) -> QuotaOut:
        """An owner's quota (``limited`` false: none) and where it stands this period."""
        from batchyard.wire import QuotaOut

        params = {"project": project} if project else {}
        return QuotaOut.model_validate(self._json("GET", f"/api/v1/quotas/{_segment(owner)}", params=params))

    def list_quotas(self, *, owner: str | None = None) -> list[QuotaOut]:
        from batchyard.wire import QuotaOut

        params = {"owner": owner} if owner else {}
        return [QuotaOut.model_validate(q) for q in self._json("GET", "/api/v1/quotas", params=params)["data"]]

    def set_quota(self, owner: str, changes: dict[str, Any], *, project: str | None = None) -> QuotaOut:
        """Change an owner's quota (admin key): only the fields in ``changes``; None clears a limit."""
        from batchyard.wire import QuotaOut

        params = {"project": project} if project else {}
        path = f"/api/v1/quotas/{_segment(owner)}"
        return QuotaOut.model_validate(self._json("PUT", path, json=changes, params=params))

    def delete_quota(self, owner: str, *, project: str | None = None) -> QuotaOut:
        from batchyard.wire import QuotaOut

        params = {"project": project} if project else {}
        return QuotaOut.model_validate(self._json("DELETE", f"/api/v1/quotas/{_segment(owner)}", params=params))

    # -- files --------------------------------------------------------------------------------------------------

    def upload_file(
        self, source: str | Path | IO[bytes], *, filename: str | None = None, purpose: str = "batch"
    ) -> FileOut:
        """Upload a file (streamed, any size up to the server's limit); returns its record with ``id``."""
        if isinstance(source, str | Path):
            path = Path(source)
            with path.open("rb") as stream:
                return self.upload_file(stream, filename=filename or path.name, purpose=purpose)
        name = filename or Path(str(getattr(source, "name", "") or "upload")).name
        content: Any = source if _seekable(source) else _Unsized(source)  # read() is all httpx needs
        from batchyard.wire import FileOut

        return FileOut.model_validate(
            self._json(
                "POST",
                "/api/v1/files",
                data={"purpose": purpose},
                files={"file": (name, content, "application/octet-stream")},
                timeout=UPLOAD_TIMEOUT_SECONDS,
            )
        )

    def delete_file(self, file_id: str) -> None:
        self.request("DELETE", f"/api/v1/files/{_segment(file_id)}")

    # -- jobs ---------------------------------------------------------------------------------------------------

    def create_job(
        self,
        handler: str,
        *,
        items: Sequence[Any] | None = None,
        input_file_id: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> JobOut:
        """Create a job from inline ``items`` or an uploaded file; ``options`` are the other body fields
        (params, description, tags, metadata, project, priority, scheduled_at, max_attempts, ...; None is left
        out). With ``wait`` the server answers once the job is finished or after that many seconds."""
        body: dict[str, Any] = {"handler": handler, **{k: v for k, v in options.items() if v is not None}}
        if items is not None:
            body["items"] = list(items)
        if input_file_id is not None:
            body["input_file_id"] = input_file_id
        params = {"wait": min(wait, MAX_WAIT_SECONDS)} if wait else None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        timeout = DEFAULT_TIMEOUT_SECONDS + (params["wait"] if params else 0)
        return _job(self._json("POST", "/api/v1/jobs", json=body, params=params, headers=headers, timeout=timeout))

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        project: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[JobOut]:
        """One page of jobs, newest first unless ``sort`` says otherwise. ``statuses`` are status names or the
        groups ``active`` and ``finished``; ``q`` searches ids (or a prefix), descriptions and tags."""
        query = _job_filter_params(statuses, handler, project, tag, owner, q, created_after, created_before)
        for name, value in (("sort", sort), ("limit", limit), ("cursor", cursor)):
            if value is not None:
                query.append((name, value))
        from batchyard.wire import JobOut, Page

        return Page[JobOut].model_validate(self._json("GET", "/api/v1/jobs", params=query))

    def iter_jobs_csv(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        project: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        sort: str | None = None,
    ) -> Iterator[bytes]:
        """The job list as CSV (``GET /api/v1/jobs.csv``, the list's filters), streamed in chunks."""
        query = _job_filter_params(statuses, handler, project, tag, owner, q, created_after, created_before)
        if sort is not None:
            query.append(("sort", sort))
        try:
            timeout = httpx.Timeout(UPLOAD_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
            with self._http.stream("GET", "/api/v1/jobs.csv", params=query, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_bytes(DOWNLOAD_CHUNK_BYTES)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def iter_jobs(self, *, limit: int | None = None, page_size: int = 100, **filters: Any) -> Iterator[JobOut]:
        """Jobs across pages (following ``next_cursor``), at most ``limit`` of them."""
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            page = self.list_jobs(limit=size, cursor=cursor, **filters)
            for job in page.data:
                yield job
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    def get_job(self, job_id: str) -> JobOut:
        return _job(self._json("GET", f"/api/v1/jobs/{_segment(job_id)}"))

    def _move(self, job_id: str, action: str) -> Any:
        return self._json("POST", f"/api/v1/jobs/{_segment(job_id)}/{action}")

    def cancel_job(self, job_id: str) -> JobOut:
        return _job(self._move(job_id, "cancel"))

    def pause_job(self, job_id: str) -> JobOut:
        return _job(self._move(job_id, "pause"))

    def resume_job(self, job_id: str) -> JobOut:
        return _job(self._move(job_id, "resume"))

    def retry_job(
        self, job_id: str, *, include: Sequence[str] | None = None, error_group: str | None = None
    ) -> RetryOut:
        """Queue items again; the job comes back with ``retried``: how many. ``include`` names the item statuses
        (``"failed"``, ``"cancelled"``); by default the failed items, and for a cancelled or expired job its
        cancelled ones too (it runs again, keeping the results of the items that finished). ``error_group`` (a
        signature from :meth:`error_groups`) queues only that group's failed items."""
        from batchyard.wire import RetryOut

        body: dict[str, Any] = {}
        if include is not None:
            body["include"] = list(include)
        if error_group is not None:
            body["error_group"] = error_group
        path = f"/api/v1/jobs/{_segment(job_id)}/retry"
        return RetryOut.model_validate(self._json("POST", path, **({"json": body} if body else {})))

    def history(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        bucket: str | None = None,
        recent: int | None = None,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        project: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        q: str | None = None,
    ) -> HistoryOut:
        """Finished jobs per hour or day over [since, until) (default: the last 7 days), with the list's filters."""
        from batchyard.wire import HistoryOut

        query = _job_filter_params(statuses, handler, project, tag, owner, q, None, None)
        for name, value in (("since", since), ("until", until), ("bucket", bucket), ("recent", recent)):
            if value is not None:
                query.append((name, value))
        return HistoryOut.model_validate(self._json("GET", "/api/v1/stats/history", params=query))

    def bulk(
        self,
        action: str,
        *,
        ids: Sequence[str] | None = None,
        filter: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> BulkOut:
        """One action (cancel, pause, resume, retry, delete) on the jobs ``ids`` names or on every job matching
        ``filter`` (the list's filters as a dict: ``{"status": ["active"], "q": "march"}``); ``dry_run`` counts."""
        from batchyard.wire import BulkOut

        body: dict[str, Any] = {"action": action, "dry_run": dry_run}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = filter
        return BulkOut.model_validate(self._json("POST", "/api/v1/jobs/bulk", json=body, timeout=BULK_TIMEOUT_SECONDS))

    def error_groups(
        self, job_id: str, *, limit: int | None = None, samples: int | None = None, cursor: str | None = None
    ) -> Page[ErrorGroupOut]:
        """One page of the job's failures grouped by error signature, largest group first."""
        from batchyard.wire import ErrorGroupOut, Page

        params = {k: v for k, v in (("limit", limit), ("samples", samples), ("cursor", cursor)) if v is not None}
        path = f"/api/v1/jobs/{_segment(job_id)}/error-groups"
        return Page[ErrorGroupOut].model_validate(self._json("GET", path, params=params))

    def download_error_group(self, job_id: str, signature: str, target: str | Path) -> int:
        """Stream one error group's failed items (JSON lines with key, error and payload) to ``target``."""
        path = f"/api/v1/jobs/{_segment(job_id)}/error-groups/{_segment(signature)}/items.jsonl"
        return self._download(path, Path(target))

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"/api/v1/jobs/{_segment(job_id)}")

    # -- webhooks -----------------------------------------------------------------------------------------------

    def create_webhook(self, url: str, *, events: Sequence[str] = (), owner: str | None = None) -> NewWebhookOut:
        """A new endpoint; the answer holds its signing secret, shown only this once."""
        from batchyard.wire import NewWebhookOut

        body: dict[str, Any] = {"url": url, "events": list(events), **({"owner": owner} if owner else {})}
        return NewWebhookOut.model_validate(self._json("POST", "/api/v1/webhooks", json=body))

    def list_webhooks(self, *, owner: str | None = None) -> list[WebhookOut]:
        """Every endpoint the key may see (all pages), oldest first."""
        from batchyard.wire import WebhookOut

        found: list[WebhookOut] = []
        params: dict[str, Any] = {"limit": 200, **({"owner": owner} if owner else {})}
        while True:
            page = self._json("GET", "/api/v1/webhooks", params=params)
            found += [WebhookOut.model_validate(w) for w in page["data"]]
            if not page["has_more"]:
                return found
            params["cursor"] = page["next_cursor"]

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", f"/api/v1/webhooks/{_segment(webhook_id)}")

    def webhook_deliveries(self, webhook_id: str, *, limit: int = 50) -> list[DeliveryOut]:
        """The endpoint's latest delivery attempts, newest first."""
        from batchyard.wire import DeliveryOut

        page = self._json("GET", f"/api/v1/webhooks/{_segment(webhook_id)}/deliveries", params={"limit": limit})
        return [DeliveryOut.model_validate(d) for d in page["data"]]

    def redeliver(self, webhook_id: str, delivery_id: str) -> RedeliveryOut:
        from batchyard.wire import RedeliveryOut

        path = f"/api/v1/webhooks/{_segment(webhook_id)}/deliveries/{_segment(delivery_id)}/redeliver"
        return RedeliveryOut.model_validate(self._json("POST", path))

    def job_notifications(self, job_id: str) -> list[NotificationOut]:
        """The webhooks and emails the job's events made, and how each delivery stands."""
        from batchyard.wire import NotificationOut

        page = self._json("GET", f"/api/v1/jobs/{_segment(job_id)}/notifications")
        return [NotificationOut.model_validate(n) for n in page["data"]]

    def webhook_secret(self, *, owner: str | None = None) -> WebhookSecretOut:
        """The owner's default signing secret (jobs' own webhook_url), made on first use."""
        from batchyard.wire import WebhookSecretOut

        params = {"owner": owner} if owner else None
        return WebhookSecretOut.model_validate(self._json("GET", "/api/v1/webhooks/secret", params=params))

    def job_events(self, job_id: str, *, after: int = 0, limit: int = EVENTS_PAGE) -> list[EventOut]:
        """A page of the job's timeline, oldest first, the events with an id above ``after``."""
        from batchyard.wire import EventOut

        page = self._json("GET", f"/api/v1/jobs/{_segment(job_id)}/events", params={"after": after, "limit": limit})
        return [EventOut.model_validate(e) for e in page["data"]]

    def last_events(self, job_id: str, n: int) -> list[EventOut]:
        """The newest ``n`` events of a job, oldest first (pages through the timeline)."""
        newest: collections.deque[EventOut] = collections.deque(maxlen=n)
        after = 0
        while True:
            page = self.job_events(job_id, after=after)
            newest.extend(page)
            if len(page) < EVENTS_PAGE:
                return list(newest)
            after = page[-1].id

    def wait_job(self, job_id: str, *, timeout: float | None = None, poll_seconds: float = 0.5) -> JobOut:
        """Poll until the job is finished (a terminal status, result files written); TimeoutError after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get_job(job_id)
        while not job.finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout}s")
            time.sleep(poll_seconds)
            job = self.get_job(job_id)
        return job

    def download(self, job_id: str, name: str, target: str | Path) -> int:
        """Stream one result file (``results.jsonl``, ``errors.jsonl``, ``results.csv``, ``artifacts.zip``) to
        ``target``; returns its size. A failed download leaves no partial file behind."""
        return self._download(f"/api/v1/jobs/{_segment(job_id)}/{_segment(name)}", Path(target))

    def _download(self, path: str, target: Path) -> int:
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            timeout = httpx.Timeout(UPLOAD_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
            with self._http.stream("GET", path, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
            partial.replace(target)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        finally:
            partial.unlink(missing_ok=True)
        return written


def _job_filter_params(
    statuses: Sequence[str],
    handler: str | None,
    project: str | None,
    tag: str | None,
    owner: str | None,
    q: str | None,
    created_after: float | None,
    created_before: float | None,
) -> list[tuple[str, str | int | float | bool | None]]:
    query: list[tuple[str, str | int | float | bool | None]] = []
    if statuses:
        query.append(("status", ",".join(statuses)))
    for name, value in (
        ("handler", handler),
        ("project", project),
        ("tag", tag),
        ("owner", owner),
        ("q", q),
        ("created_after", created_after),
        ("created_before", created_before),
    ):
        if value is not None:
            query.append((name, value))
    return query


def _job(data: Any) -> JobOut:
    from batchyard.wire import JobOut

    return JobOut.model_validate(data)


def error_from_response(response: httpx.Response) -> ApiError:
    """The server's ``{"error": {...}}`` as an :class:`ApiError`; anything else described by status and body."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return ApiError(
            status,
            error["message"],
            type_=str(error.get("type") or "HTTPError"),
            code=str(error.get("code") or "http_error"),
            param=error.get("param"),
            body=error,
        )
    excerpt = " ".join(response.text.split())[:BODY_EXCERPT_CHARS]
    where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
    return ApiError(
        status, f"{where} answered HTTP {status} {response.reason_phrase}" + (f": {excerpt}" if excerpt else "")
    )
