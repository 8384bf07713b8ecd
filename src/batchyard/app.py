"""The application object: handlers, settings, and the Python API to submit and follow jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from batchyard.core.records import ItemRecord, JobRecord
from batchyard.data.blobs import LocalStorage, job_prefix
from batchyard.data.results import ERRORS_JSONL, RESULT_FILE_NAMES, RESULTS_JSONL, elsewhere_message
from batchyard.errors import NotFound, NotReady
from batchyard.handlers import register_builtin_handlers, served_handlers
from batchyard.handlers.demo import register_demo_handlers
from batchyard.registry import HandlerRegistry
from batchyard.services.activity import ActivityService
from batchyard.services.auth import AuthService
from batchyard.services.bulk import BulkService
from batchyard.services.errorgroups import ErrorGroupService
from batchyard.services.files import FileService
from batchyard.services.items import ItemService
from batchyard.services.jobs import ItemSource, JobService, JobView
from batchyard.services.keys import KeyService
from batchyard.services.openai_batches import OpenAIBatchService
from batchyard.services.results import ResultService
from batchyard.services.retention import RetentionService
from batchyard.services.stats import StatsService
from batchyard.services.system import SystemService
from batchyard.services.webhooks import WebhookService
from batchyard.settings import Settings
from batchyard.store import Store

if TYPE_CHECKING:  # the worker (asyncio and all) is imported when one runs, not for every CLI command
    from batchyard.services.metrics import MetricsService
    from batchyard.services.quotas import QuotaService
    from batchyard.services.runs import RunService
    from batchyard.wire import JobOut
    from batchyard.worker import Worker, WorkerStats

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R", bound=Callable[[], Any])


class Batchyard:
    """A Batchyard application: register handlers, submit batches, run workers.

    >>> app = Batchyard()                       # settings from BATCHYARD_* env; SQLite under the data dir
    >>> @app.handler("double")
    ... def double(item, ctx):
    ...     return {"value": item["n"] * 2}
    >>> job = app.submit("double", [{"n": 1}, {"n": 2}])
    >>> job.wait().job.status
    'completed'
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        demo_handlers: bool = False,
        builtin_handlers: bool = True,
        **overrides: Any,
    ) -> None:
        """``demo_handlers=True`` also offers ``echo``, ``sleep`` and ``flaky`` (to try things; never in production).
        ``builtin_handlers=False`` leaves out ``openai`` (OpenAI-format requests to your upstreams) and ``http``."""
        self.settings = settings or Settings(**overrides)
        if settings is not None and overrides:
            self.settings = settings.model_copy(update=overrides)
        self.registry = HandlerRegistry()
        if builtin_handlers:
            register_builtin_handlers(self.registry, lambda: self.settings)
        if demo_handlers:
            register_demo_handlers(self.registry)
        self._store: Store | None = None
        self._lock = threading.Lock()

    # -- handlers ---------------------------------------------------------------------------------------------

    def handler(
        self,
        name: str | None = None,
        *,
        concurrency: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        resources: Sequence[str] = (),
        admit: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Register a function ``(item, ctx) -> result`` (sync or async) as a handler.

        ``concurrency`` is items in flight per worker process (threads for a sync handler), ``max_attempts`` and
        ``timeout`` (seconds per attempt) are defaults for jobs of this handler. ``resources`` names worker
        resources (:meth:`resource`) made ready before each item starts, so their start-up is not part of the
        item's timeout; a handler may also use any resource without naming it here (``ctx.resources[name]``).

        ``admit`` is called as ``admit(item, ctx)`` before each item, in the same attempt (and timeout) as the
        handler: it checks the app's own rules and raises :class:`~batchyard.errors.PauseJob` to pause the job
        (the item goes back to the queue, its attempt not counted) or :class:`~batchyard.errors.SkipItem` to end
        the item as ``skipped``; returning lets the handler run. It may be sync or async: an async hook for a sync
        handler runs on the worker's event loop, a sync hook for an async handler runs on the event loop too (keep
        it quick, or make it async). Any other exception fails the attempt like the handler's own.
        """

        def decorate(function: F) -> F:
            self.registry.register(
                name or function.__name__,
                function,
                concurrency=concurrency,
                max_attempts=max_attempts,
                timeout=timeout,
                resources=resources,
                admit=admit,
            )
            return function

        return decorate

    def resource(self, name: str | None = None) -> Callable[[R], R]:
        """Register a worker resource: one value per worker process, made on the first item that needs it,
        shared by all of the worker's items (async and sync), and cleaned up when the worker stops (SIGTERM,
        Ctrl-C, the end of ``wait()``), after its in-flight items finish. Handlers get it as
        ``ctx.resources[name]``.

        Decorate a generator or async generator function that yields the value once (the code after ``yield``
        cleans up), or a function that returns a context manager or async context manager::

            @app.resource("browser")
            async def browser():
                async with async_playwright() as p:
                    browser = await p.chromium.launch()
                    yield browser
                    await browser.close()

        A resource that fails to start fails the items that need it, retryably (error code
        ``resource_unavailable``, naming the resource and the cause); it is tried again with exponential
        backoff (``BATCHYARD_RESOURCE_RETRY_BASE_SECONDS`` doubling up to ``..._MAX_SECONDS``), not on every item.
        """

        def decorate(factory: R) -> R:
            self.registry.register_resource(name or factory.__name__, factory)
            return factory

        return decorate

    # -- plumbing -------------------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The database, for workers, maintenance and tests. HTTP routes and CLI commands use the services below
        (``tests/unit/test_layers.py`` keeps them from importing the store)."""
        with self._lock:
            if self._store is None:
                store = Store(self.settings.effective_database_url)
                if self.settings.auto_migrate:
                    store.upgrade()
                self._store = store
            return self._store

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.settings.data_dir / "files")

    @property
    def service(self) -> JobService:
        """Jobs: submit, read, move (see :class:`JobService`). HTTP routes and CLI commands reach the data
        through the services here, never through :attr:`store`."""
        return JobService(self.store, self.storage, self.settings, self.registry)

    @property
    def items(self) -> ItemService:
        return ItemService(self.store, self.service)

    @property
    def bulk(self) -> BulkService:
        """One move on many jobs, by ids or by the job list's filter, with a dry run."""
        return BulkService(self.store, self.service)

    @property
    def error_groups(self) -> ErrorGroupService:
        """A job's failures grouped by error signature: list, export and retry one group."""
        return ErrorGroupService(self.store, self.service)

    @property
    def results(self) -> ResultService:
        return ResultService(self.store, self.storage, self.service)

    @property
    def files(self) -> FileService:
        return FileService(self.store, self.storage, self.settings)

    @property
    def openai_batches(self) -> OpenAIBatchService:
        """The OpenAI-compatible Batch API (``/v1/batches``): batches are jobs of the ``openai`` handler."""
        return OpenAIBatchService(self.store, self.storage, self.settings, self.registry)

    @property
    def runs(self) -> RunService:
        """``batchyard run``: OpenAI batch files run through the ``openai`` handler, found again on rerun."""
        from batchyard.services.runs import RunService

        return RunService(self.store, self.storage, self.settings, self.registry)

    @property
    def activity(self) -> ActivityService:
        return ActivityService(self.store)

    @property
    def auth(self) -> AuthService:
        return AuthService(self.store)

    @property
    def keys(self) -> KeyService:
        return KeyService(self.store)

    @property
    def quotas(self) -> QuotaService:
        """Quotas per owner (and project): read, set, remove (see :class:`QuotaService`)."""
        from batchyard.services.quotas import QuotaService

        return QuotaService(self.store)

    @property
    def webhooks(self) -> WebhookService:
        """Webhook endpoints (add, list, remove), their delivery log, redelivery, and owners' default secrets."""
        return WebhookService(self.store, self.settings)

    @property
    def stats(self) -> StatsService:
        return StatsService(self.store)

    @property
    def system(self) -> SystemService:
        return SystemService(self.store, self.settings, self.registry)

    @property
    def retention(self) -> RetentionService:
        return RetentionService(self.store, self.storage, self.settings)

    @property
    def metrics(self) -> MetricsService:
        from batchyard.services.metrics import MetricsService  # prometheus_client: for servers, not every CLI start

        return MetricsService(self.store, self.settings)

    def connect(self) -> None:
        """Open the database now (and migrate it, unless disabled) instead of on first use."""
        self.store  # noqa: B018 - the property connects

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- jobs -----------------------------------------------------------------------------------------------

    def submit(
        self,
        handler: str,
        items: ItemSource,
        *,
        description: str | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        priority: int = 0,
        owner: str = "local",
        project: str | None = None,
        format: Literal["jsonl", "csv"] | None = None,
        source_name: str | None = None,
        scheduled_at: float | None = None,
        expires_in_seconds: float | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        concurrency: int | None = None,
        max_failures: int | None = None,
        max_failure_rate: float | None = None,
        webhook_url: str | None = None,
        notify_emails: Sequence[str] = (),
    ) -> Job:
        """Create a job of ``handler`` for every item, checking them all first (nothing is created if one is bad).

        ``items``: an iterable of JSON-serializable values (a dict's ``custom_id`` or ``key`` names the item),
        or the path of a JSONL/CSV file (``format`` when its extension says neither), or a binary stream.

        - ``description``, ``tags``, ``metadata``: for people and filters; ``params`` reach the handler as
          ``ctx.params``.
        - ``priority`` (-1000 to 1000, higher first); ``owner`` and ``project`` scope who sees the job.
        - ``scheduled_at`` (a Unix time) delays the start; ``expires_in_seconds`` is the completion window.
        - ``max_attempts``, ``timeout_seconds`` (per attempt) and ``concurrency`` (items in flight, all workers
          together) override the handler's defaults; ``max_failures`` / ``max_failure_rate`` fail the whole
          job once crossed.
        - ``webhook_url`` gets this job's ``job.*`` events (completed, failed, cancelled, paused, expired), signed
          with the owner's default secret (``app.webhooks.default_secret()``); ``notify_emails`` (up to 20
          addresses) are emailed when it ends.
        """
        record = self.service.submit(
            handler,
            items,
            format=format,
            owner=owner,
            project=project,
            priority=priority,
            params=params,
            description=description,
            tags=tags,
            metadata=metadata,
            scheduled_at=scheduled_at,
            expires_in_seconds=expires_in_seconds,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
            concurrency=concurrency,
            max_failures=max_failures,
            max_failure_rate=max_failure_rate,
            source_name=source_name,
            webhook_url=webhook_url,
            notify_emails=notify_emails,
        )
        return Job(self, record.id)

    def job(self, job_id: str) -> Job:
        self.store.jobs.get_job(job_id)
        return Job(self, job_id)

    def worker(self, *, run_maintenance: bool = True, **options: Any) -> Worker:
        from batchyard.services.maintenance import Maintenance
        from batchyard.services.outbox import OutboxDispatcher
        from batchyard.worker import Worker

        maintenance = Maintenance(self.store, self.storage, self.settings) if run_maintenance else None
        outbox = OutboxDispatcher(
            self.store, self.settings, self.service, self.openai_batches, job_ids=options.get("job_ids")
        )
        if not options.get("handlers"):
            # The built-in openai handler only with an upstream: a worker with nowhere to send requests must
            # not take them from one that has somewhere.
            options["handlers"] = served_handlers(self.registry, self.settings) or None
        return Worker(
            self.store, self.storage, self.registry, self.settings, maintenance=maintenance, outbox=outbox, **options
        )

    def run_worker(self, **options: Any) -> WorkerStats:
        """Run a worker in this thread until interrupted (Ctrl-C or SIGTERM stop it gracefully)."""
        import asyncio
        import signal

        worker = self.worker(**options)

        async def main() -> WorkerStats:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, worker.request_stop)
            return await worker.run()

        return asyncio.run(main())

    def upgrade_database(self) -> tuple[str | None, str | None]:
        """Apply any pending migrations to the database, whatever ``auto_migrate`` says: its revision before
        (None: it had no schema) and after."""
        store = Store(self.settings.effective_database_url)  # not self.store: that may have migrated already
        try:
            before = store.revision()
            store.upgrade()
            return before, store.revision()
        finally:
            store.close()


class Job:
    """A handle on one job: follow it, wait for it, read its results, act on it."""

    def __init__(self, app: Batchyard, job_id: str) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def refresh(self) -> JobView:
        return self.app.service.get(self.id)

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        poll_seconds: float = 0.1,
        return_when_paused: bool = False,
    ) -> JobView:
        """Block until the job is finished and its result files are written.

        With no live worker for the job's handler, this job's items (and no other job's) are processed in this
        process meanwhile, by a worker limited to it (which other processes do not count as serving the handler).
        ``progress=True`` shows a progress bar on the terminal. ``return_when_paused=True`` also returns once the
        job is paused with nothing of it running (its handler raised PauseJob, or someone paused it): see
        ``view.job.status_reason`` and ``status_message``; :meth:`resume` and ``wait`` again to go on.
        """
        view = self.refresh()
        runner = None
        handler = view.job.handler
        if (
            not view.finished
            and not self.app.service.has_live_worker_for(handler, self.id)
            and handler in self.app.registry
        ):
            runner = InProcessWorker(self.app, handlers=[handler], job_ids=[self.id])
            runner.start()
        try:
            if progress:
                from batchyard.cli.bar import follow_job

                until = _paused_and_still if return_when_paused else None
                return follow_job(self.app.service, self.id, timeout=timeout, until=until)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not view.finished and not (return_when_paused and _paused_and_still(view.job)):
                if runner is not None and runner.error is not None:
                    raise runner.error  # it crashed (logged with its traceback): waiting would never end
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.id} still {view.job.status} after {timeout}s")
                time.sleep(poll_seconds)
                view = self.refresh()
            return view
        finally:
            if runner is not None:
                runner.stop()

    def results(self) -> Iterator[ItemRecord]:
        """Succeeded items in input order, with their results (streamed, any size)."""
        return self.app.store.items.iter_items(self.id, statuses=["succeeded"])

    def errors(self) -> Iterator[ItemRecord]:
        return self.app.store.items.iter_items(self.id, statuses=["failed"])

    def items(self) -> Iterator[ItemRecord]:
        return self.app.store.items.iter_items(self.id)

    def pause(self) -> JobView:
        return self.app.service.pause(self.id)

    def resume(self) -> JobView:
        return self.app.service.resume(self.id)

    def cancel(self) -> JobView:
        return self.app.service.cancel(self.id)

    def retry_failed(self) -> int:
        """Queue the failed items again; returns how many."""
        return self.app.service.retry(self.id, include=["failed"])[1]

    def retry(self, include: Sequence[str] | None = None) -> int:
        """Queue items again (``include``: ``"failed"``, ``"cancelled"``; by default the failed ones, and a
        cancelled or expired job's cancelled ones too: it runs again). Returns how many."""
        return self.app.service.retry(self.id, include=include)[1]

    def delete(self) -> None:
        self.app.service.delete(self.id)

    def download(self, directory: str | Path) -> list[Path]:
        """Copy the job's result files into ``directory``; returns the paths written."""
        view = self.refresh()
        if not view.job.result_files:
            raise NotReady(
                f"job {self.id} has no result files yet (status {view.job.status}); they are written when it finishes"
            )
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in RESULT_FILE_NAMES:
            if name not in view.job.result_files:
                continue
            target = out / name
            stored = f"{job_prefix(self.id)}/{name}"
            try:
                src = self.app.storage.open_read(stored)
            except FileNotFoundError:
                where = str(self.app.storage.path(stored).parent)
                raise NotFound(elsewhere_message(self.id, name, view.job.result_files[name], where)) from None
            with src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            written.append(target)
        return written


def _paused_and_still(job: JobRecord | JobOut) -> bool:
    """Paused with none of its items running: nothing will change until someone resumes it."""
    running = job.running if isinstance(job, JobRecord) else job.counts.running
    return job.status == "paused" and running == 0


class InProcessWorker:
    """A worker on a background thread, for ``wait()`` and ``submit --wait`` when no worker is running."""

    def __init__(self, app: Batchyard, **options: Any) -> None:
        # Whoever waits sees the failed count (and the CLI its summary); log lines would tear the progress bar.
        self.worker = app.worker(**{"log_failures": False, **options})
        self._thread = threading.Thread(target=self._run, name="batchyard-inprocess-worker", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self.worker.run())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> None:
        """Start it and return once it is registered (counted as live), so a progress bar never shows the job
        as having no worker; or once it has failed (``error``)."""
        self._thread.start()
        while not self.worker.registered.wait(0.05) and self._thread.is_alive():
            pass

    def stop(self) -> None:
        self.worker.request_stop()
        self._thread.join()
        if self.error is not None:
            raise self.error


__all__ = ["ERRORS_JSONL", "RESULTS_JSONL", "Batchyard", "Job"]
