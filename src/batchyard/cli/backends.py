"""Where a ``jobs`` command acts: the local database (through the services) or a server (through its REST API).

A command opens one :class:`Backend` (:func:`open_backend`), asks it, and renders the answer once: both
:class:`LocalBackend` and :class:`RemoteBackend` hand back the wire models of :mod:`batchyard.wire`, so a job
looks the same, in a table or as ``--json``, whichever way it came. Neither touches the store.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import typer

from batchyard.cli.bar import POLL_SECONDS
from batchyard.cli.common import hint_command, open_app, open_client, remote_hint
from batchyard.cli.render import ResultFile
from batchyard.data.blobs import job_prefix
from batchyard.data.results import ERRORS_JSONL, RESULT_FILE_NAMES, RESULTS_CSV, RESULTS_JSONL
from batchyard.errors import NotReady
from batchyard.wire import EventOut, JobOut

if TYPE_CHECKING:  # the local database or the HTTP client: each is imported only when it is used
    from batchyard.app import Batchyard
    from batchyard.client import Client
    from batchyard.core.records import JobFilter

EVENT_PAGE = 500
PARTIAL_FILE_NAMES = (RESULTS_JSONL, ERRORS_JSONL, RESULTS_CSV)  # artifacts.zip only exists once a job finished
REMOTE_POLL_SECONDS = 0.3  # a request per poll: a little slower than reading the local database
CLI_ACTOR = "cli"  # who acted, in the job's timeline, for moves made from the local CLI


class Backend(Protocol):
    """What the ``jobs`` commands need, wherever the jobs are."""

    poll_seconds: float  # how often to ask again while following a job

    def list_jobs(self, where: JobFilter, *, limit: int) -> list[JobOut]:
        """Jobs matching ``where``, newest first."""
        ...

    def jobs_csv(self, where: JobFilter) -> Iterator[bytes]:
        """The job list as CSV (the API's ``jobs.csv``), in chunks."""
        ...

    def get_job(self, job_id: str) -> JobOut: ...

    def last_events(self, job_id: str, n: int) -> list[EventOut]:
        """The newest ``n`` events of the job, oldest first."""
        ...

    def pause(self, job_id: str) -> JobOut: ...

    def resume(self, job_id: str) -> JobOut: ...

    def cancel(self, job_id: str) -> JobOut: ...

    def retry(self, job_id: str, *, only_failed: bool = False) -> tuple[JobOut, int]:
        """Queue items again: the failed ones (and a cancelled or expired job's cancelled ones, unless
        ``only_failed``). The job, and how many items."""
        ...

    def delete(self, job_id: str) -> None: ...

    def has_live_worker_for(self, handler: str) -> bool: ...

    def result_files(self, job: JobOut) -> list[ResultFile]:
        """The job's written result files, in a fixed order; ``path`` is where they are on this machine (None:
        on the server)."""
        ...

    def download(self, job: JobOut, directory: Path, *, partial: bool = False) -> list[ResultFile]:
        """Copy the job's written result files into ``directory`` (created). Before they are written: with
        ``partial``, results.jsonl, errors.jsonl and results.csv of the items finished so far; else NotReady."""
        ...

    def hint(self, *words: str) -> str:
        """A follow-up command (Rich markup) that reaches the same jobs: ``batchyard jobs show ID --url ...``."""
        ...

    def start_worker_hint(self) -> str:
        """How to get a worker running, for "No worker is running for 'echo'" (Rich markup)."""
        ...


class LocalBackend:
    """The jobs of the local database (``--data-dir``/``--db``), through the app's services."""

    poll_seconds = POLL_SECONDS

    def __init__(self, ctx: typer.Context, app: Batchyard, app_ref: str | None) -> None:
        self.ctx = ctx
        self.app = app
        self.app_ref = app_ref

    def list_jobs(self, where: JobFilter, *, limit: int) -> list[JobOut]:
        from batchyard.core.records import JobQuery

        views = self.app.service.list_jobs(JobQuery.of(where, limit=limit))
        return [JobOut.of(v) for v in views]

    def jobs_csv(self, where: JobFilter) -> Iterator[bytes]:
        return self.app.results.jobs_csv(where=where)

    def get_job(self, job_id: str) -> JobOut:
        return JobOut.of(self.app.service.get(job_id))

    def last_events(self, job_id: str, n: int) -> list[EventOut]:
        newest: collections.deque[EventOut] = collections.deque(maxlen=n)
        after_id = 0
        while True:
            page = self.app.service.events(job_id, after_id=after_id, limit=EVENT_PAGE)
            newest.extend(EventOut.of(e) for e in page)
            if len(page) < EVENT_PAGE:
                return list(newest)
            after_id = page[-1].id

    def pause(self, job_id: str) -> JobOut:
        return JobOut.of(self.app.service.pause(job_id, actor=CLI_ACTOR))

    def resume(self, job_id: str) -> JobOut:
        return JobOut.of(self.app.service.resume(job_id, actor=CLI_ACTOR))

    def cancel(self, job_id: str) -> JobOut:
        return JobOut.of(self.app.service.cancel(job_id, actor=CLI_ACTOR))

    def retry(self, job_id: str, *, only_failed: bool = False) -> tuple[JobOut, int]:
        view, n = self.app.service.retry(job_id, include=_only_failed(only_failed), actor=CLI_ACTOR)
        return JobOut.of(view), n

    def delete(self, job_id: str) -> None:
        self.app.service.delete(job_id, actor=CLI_ACTOR)

    def has_live_worker_for(self, handler: str) -> bool:
        return self.app.service.has_live_worker_for(handler)

    def result_files(self, job: JobOut) -> list[ResultFile]:
        storage = self.app.storage
        return [
            ResultFile(name, storage.path(f"{job_prefix(job.id)}/{name}"), info.get("bytes"), info.get("rows"))
            for name, info in _listed(job)
        ]

    def download(self, job: JobOut, directory: Path, *, partial: bool = False) -> list[ResultFile]:
        if not job.result_files and partial:
            directory.mkdir(parents=True, exist_ok=True)
            return [
                ResultFile(name, directory / name, _save(self.app.results.open(job.id, name).chunks, directory / name))
                for name in PARTIAL_FILE_NAMES
            ]
        rows = {name: info.get("rows") for name, info in _listed(job)}
        paths = self.app.job(job.id).download(directory)
        return [ResultFile(p.name, p, p.stat().st_size, rows.get(p.name)) for p in paths]

    def hint(self, *words: str) -> str:
        return hint_command(self.ctx, self.app_ref, *words)

    def start_worker_hint(self) -> str:
        return f"start one with [cyan]{self.hint('worker')}[/]"


class RemoteBackend:
    """The jobs on a server (``--url``/``--key``), through its REST API."""

    poll_seconds = REMOTE_POLL_SECONDS

    def __init__(self, ctx: typer.Context, client: Client) -> None:
        self.ctx = ctx
        self.client = client

    def list_jobs(self, where: JobFilter, *, limit: int) -> list[JobOut]:
        return list(self.client.iter_jobs(limit=limit, **_filter_params(where)))

    def jobs_csv(self, where: JobFilter) -> Iterator[bytes]:
        return self.client.iter_jobs_csv(**_filter_params(where))

    def get_job(self, job_id: str) -> JobOut:
        return self.client.get_job(job_id)

    def last_events(self, job_id: str, n: int) -> list[EventOut]:
        return self.client.last_events(job_id, n)

    def pause(self, job_id: str) -> JobOut:
        return self.client.pause_job(job_id)

    def resume(self, job_id: str) -> JobOut:
        return self.client.resume_job(job_id)

    def cancel(self, job_id: str) -> JobOut:
        return self.client.cancel_job(job_id)

    def retry(self, job_id: str, *, only_failed: bool = False) -> tuple[JobOut, int]:
        answer = self.client.retry_job(job_id, include=_only_failed(only_failed))
        return JobOut.model_validate(answer.model_dump(exclude={"retried"})), answer.retried

    def delete(self, job_id: str) -> None:
        self.client.delete_job(job_id)

    def has_live_worker_for(self, handler: str) -> bool:
        return self.client.has_live_worker_for(handler)

    def result_files(self, job: JobOut) -> list[ResultFile]:
        return [ResultFile(name, None, info.get("bytes"), info.get("rows")) for name, info in _listed(job)]

    def download(self, job: JobOut, directory: Path, *, partial: bool = False) -> list[ResultFile]:
        listed = _listed(job)
        if not listed and partial:  # the server builds them from the items finished so far
            listed = [(name, {}) for name in PARTIAL_FILE_NAMES]
        if not listed:
            raise NotReady(
                f"job {job.id} has no result files yet (status {job.status}); they are written when it finishes"
            )
        directory.mkdir(parents=True, exist_ok=True)
        return [
            ResultFile(name, directory / name, self.client.download(job.id, name, directory / name), info.get("rows"))
            for name, info in listed
        ]

    def hint(self, *words: str) -> str:
        return remote_hint(self.ctx, *words)

    def start_worker_hint(self) -> str:
        return "the items wait until a worker for it runs ([cyan]batchyard serve[/] runs one)."


def _save(chunks: Iterator[bytes], target: Path) -> int:
    """Write ``chunks`` to ``target`` (all or nothing: a failure leaves no half file); returns the size."""
    temporary = target.with_name(f".{target.name}.part")
    written = 0
    try:
        with temporary.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return written


def _listed(job: JobOut) -> list[tuple[str, dict[str, int | None]]]:
    files = job.result_files
    return [(name, files[name]) for name in RESULT_FILE_NAMES if name in files]


def _filter_params(where: JobFilter) -> dict[str, Any]:
    """A job filter as the client's keyword arguments."""
    return {
        "statuses": list(where.statuses),
        "handler": where.handler,
        "project": where.project,
        "tag": where.tag,
        "owner": where.owner,
        "q": where.search,
        "created_after": where.created_after,
        "created_before": where.created_before,
    }


@contextlib.contextmanager
def open_backend(
    ctx: typer.Context, url: str | None, key: str | None, app_ref: str | None, *, rescue_stale: bool = False
) -> Iterator[Backend]:
    """The server's jobs with ``url`` (``--url``/BATCHYARD_URL), else the local database's; closed afterwards.

    ``rescue_stale`` (jobs list and show): locally, first hand a stopped worker's expired leases back, since with
    no worker or server running nobody else does; a server's maintenance does it there.
    """
    if url:
        with open_client(url, key, app_ref) as client:
            yield RemoteBackend(ctx, client)
    else:
        with open_app(ctx, app_ref) as app:
            if rescue_stale:
                app.service.rescue_stale()
            yield LocalBackend(ctx, app, app_ref)


def _only_failed(only_failed: bool) -> list[str] | None:
    """A retry's ``include`` for ``--only-failed``; None leaves the default to the service."""
    return ["failed"] if only_failed else None
