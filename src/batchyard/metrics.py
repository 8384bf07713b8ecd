"""Prometheus metrics: what this process did, and (at scrape time) what the database holds.

Two kinds, because Batchyard runs as one process or many:

- **Process metrics** (counters and histograms in :data:`REGISTRY`): items this process's worker recorded, its
  claim and flush latencies, jobs whose result files it wrote, and the deliveries and upstream requests it made.
  ``batchyard serve`` counts its own built-in worker; each ``batchyard worker`` process counts its own, and shows
  them on ``--metrics-port`` when given. Sum them across processes in PromQL (``sum by (handler, outcome)
  (rate(batchyard_items_processed_total[5m]))``).
- **Database gauges** (:class:`DatabaseGauges`, ``GET /metrics`` of ``serve`` only): queue depth, items in flight
  and jobs by status, read from the jobs' counters when scraped -- a ``GROUP BY`` over the unfinished jobs, never a
  scan of items. They are global: every server shows the same values, so take ``max`` across servers, not ``sum``.

Recording costs next to nothing on the hot path: the worker counts a whole flush at once (one ``inc`` per
(handler, outcome) pair of the batch, not per item) and observes one claim or flush duration per statement.

Hooks for features that record their own events (call them; they never raise):

- :func:`record_upstream_request` (or the :func:`upstream_request` context manager, which times it) -- the
  ``openai``/``http`` handlers, once per upstream HTTP request (retries count apart);
- :func:`record_webhook_delivery`, :func:`record_email_delivery` -- the notification outbox, once per attempt;
- :func:`record_quota_pause` -- quotas, once per job paused because a budget is spent.

Until a feature calls its hook, its counter is defined but has no samples (nothing is made up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# One registry for Batchyard's process metrics (not prometheus_client's global one, which an application embedding
# Batchyard may use for its own): what ``GET /metrics`` and ``worker --metrics-port`` show.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ... (Linux)
PlatformCollector(registry=REGISTRY)

# Latency buckets for a claim or a flush (one SQL statement or transaction): 1 ms to 10 s.
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Job durations (created to finished): seconds to days.
JOB_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

ITEMS_PROCESSED = Counter(
    "batchyard_items_processed",
    "Item attempts recorded by this process's worker, by handler and outcome "
    "(succeeded, failed = the item failed for good, retried = the attempt failed and the item will run again).",
    ["handler", "outcome"],
    registry=REGISTRY,
)
ITEMS_CLAIMED = Counter(
    "batchyard_items_claimed", "Items claimed by this process's worker, by handler.", ["handler"], registry=REGISTRY
)
CLAIM_SECONDS = Histogram(
    "batchyard_claim_seconds",
    "How long one claim took (the worker's claim statement, with its thread hop), whether or not it found items.",
    buckets=DB_BUCKETS,
    registry=REGISTRY,
)
FLUSH_SECONDS = Histogram(
    "batchyard_flush_seconds",
    "How long one completer flush took (the transaction recording a batch of outcomes).",
    buckets=DB_BUCKETS,
    registry=REGISTRY,
)
FLUSH_OUTCOMES = Histogram(
    "batchyard_flush_outcomes",
    "Outcomes recorded per completer flush.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
JOB_DURATION_SECONDS = Histogram(
    "batchyard_job_duration_seconds",
    "Jobs finished (result files written) by this process's maintenance: seconds from creation to finish, "
    "by handler and final status.",
    ["handler", "status"],
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
PRUNED = Counter(
    "batchyard_pruned",
    "What retention pruning deleted in this process, by kind (jobs, items, files, bytes).",
    ["kind"],
    registry=REGISTRY,
)
UPSTREAM_REQUESTS = Counter(
    "batchyard_upstream_requests",
    "Requests the openai/http handlers sent upstream, by handler and status (an HTTP status code, or "
    "'error'/'timeout' when no answer came). Fed by those handlers through record_upstream_request().",
    ["handler", "status"],
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "batchyard_upstream_request_seconds",
    "Duration of requests sent upstream by the openai/http handlers, by handler.",
    ["handler"],
    buckets=UPSTREAM_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "batchyard_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, failed = will retry, gave_up). "
    "Fed by the webhook outbox through record_webhook_delivery().",
    ["outcome"],
    registry=REGISTRY,
)
EMAIL_DELIVERIES = Counter(
    "batchyard_email_deliveries",
    "Notification email attempts by outcome (delivered, failed = will retry, gave_up). "
    "Fed by the email outbox through record_email_delivery().",
    ["outcome"],
    registry=REGISTRY,
)
QUOTA_PAUSES = Counter(
    "batchyard_quota_pauses",
    "Jobs paused because an owner's budget was spent, by budget (items, tokens, cost, max_running). "
    "Fed by quotas through record_quota_pause().",
    ["budget"],
    registry=REGISTRY,
)

# What a worker's outcome kinds are called in batchyard_items_processed_total; kinds that are not processing
# (an item handed back on pause or shutdown, rescued from a dead worker, or cancelled unstarted) are not counted.
OUTCOME_LABELS: dict[str, str] = {"succeeded": "succeeded", "failed": "failed", "retry": "retried"}
NOT_PROCESSED = frozenset({"release", "rescue", "cancelled"})


# -- recording (the worker, maintenance) ----------------------------------------------------------------------


def record_claim(seconds: float, handler: str | None = None, items: int = 0) -> None:
    """One claim took ``seconds`` and leased ``items`` of ``handler``."""
    CLAIM_SECONDS.observe(seconds)
    if items and handler is not None:
        ITEMS_CLAIMED.labels(handler).inc(items)


def record_flush(seconds: float, outcomes: Mapping[tuple[str, str], int]) -> None:
    """One flush took ``seconds`` and recorded ``outcomes``: {(handler, outcome kind): how many}."""
    FLUSH_SECONDS.observe(seconds)
    FLUSH_OUTCOMES.observe(sum(outcomes.values()))
    for (handler, kind), n in outcomes.items():
        if kind in NOT_PROCESSED:
            continue
        ITEMS_PROCESSED.labels(handler, OUTCOME_LABELS.get(kind, kind)).inc(n)


def record_job_finished(handler: str, status: str, seconds: float) -> None:
    JOB_DURATION_SECONDS.labels(handler, status).observe(max(0.0, seconds))


def record_pruned(jobs: int, items: int, files: int, size: int) -> None:
    for kind, n in (("jobs", jobs), ("items", items), ("files", files), ("bytes", size)):
        if n:
            PRUNED.labels(kind).inc(n)


# -- hooks for features that count their own events -----------------------------------------------------------


def record_upstream_request(handler: str, status: int | str, seconds: float | None = None) -> None:
    """Count one request a handler sent upstream: ``status`` is the HTTP status code, or ``"error"``/``"timeout"``
    when none came; ``seconds`` its duration when known. Safe from any thread or event loop; costs microseconds."""
    UPSTREAM_REQUESTS.labels(handler, str(status)).inc()
    if seconds is not None:
        UPSTREAM_SECONDS.labels(handler).observe(max(0.0, seconds))


class UpstreamCall:
    """What :func:`upstream_request` records: set ``status`` to the answer's HTTP status once it came."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status: int | str = "error"


@contextlib.contextmanager
def upstream_request(handler: str) -> Iterator[UpstreamCall]:
    """Time one upstream request and count it by status (``timeout``, ``cancelled`` or ``error`` when no answer
    came): ``with upstream_request("openai") as call: ...; call.status = response.status``."""
    call = UpstreamCall()
    started = time.perf_counter()
    try:
        yield call
    except TimeoutError:
        call.status = "timeout"
        raise
    except asyncio.CancelledError:
        call.status = "cancelled"
        raise
    finally:
        record_upstream_request(handler, call.status, time.perf_counter() - started)


def record_webhook_delivery(outcome: str) -> None:
    """Count one webhook delivery attempt: ``delivered``, ``failed`` (will retry) or ``gave_up``."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def record_email_delivery(outcome: str) -> None:
    """Count one notification email attempt: ``delivered``, ``failed`` (will retry) or ``gave_up``."""
    EMAIL_DELIVERIES.labels(outcome).inc()


def record_quota_pause(budget: str) -> None:
    """Count one job paused because its owner's ``budget`` (items, tokens, cost, max_running) is spent."""
    QUOTA_PAUSES.labels(budget).inc()


# -- database gauges (read when scraped) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRow:
    """Unfinished jobs of one handler in one status: how many, and their queued and running items (counters)."""

    handler: str
    status: str
    jobs: int
    queued: int
    running: int


class DatabaseGauges(Collector):
    """Queue depth, in-flight items and unfinished jobs, read from the database at every scrape.

    ``read`` returns one :class:`QueueRow` per (handler, status) of the unfinished jobs; ``claimable`` names the
    statuses whose queued items a worker may take now (a paused job's queued items wait, and are reported apart)."""

    def __init__(
        self, read: Callable[[], Sequence[QueueRow]], claimable: Iterable[str], statuses: Iterable[str]
    ) -> None:
        self._read = read
        self._claimable = frozenset(claimable)
        self._statuses = tuple(statuses)

    def describe(self) -> list[Metric]:
        return []  # names are known only when collected; nothing to check them against

    def collect(self) -> Iterable[Metric]:
        rows = self._read()
        depth = GaugeMetricFamily(
            "batchyard_queue_depth",
            "Queued items of jobs workers may claim now, by handler (from job counters, all processes).",
            labels=["handler"],
        )
        waiting = GaugeMetricFamily(
            "batchyard_items_waiting",
            "Queued items of jobs that cannot be claimed now (paused, ...), by handler and job status.",
            labels=["handler", "status"],
        )
        in_flight = GaugeMetricFamily(
            "batchyard_items_in_flight",
            "Items running now (claimed by a worker, not yet recorded), by handler (all processes).",
            labels=["handler"],
        )
        jobs = GaugeMetricFamily(
            "batchyard_jobs", "Unfinished jobs by status (all owners, all processes).", labels=["status"]
        )
        queued_by: dict[str, int] = {}
        running_by: dict[str, int] = {}
        jobs_by = dict.fromkeys(self._statuses, 0)
        for row in rows:
            queued_by.setdefault(row.handler, 0)
            running_by[row.handler] = running_by.get(row.handler, 0) + row.running
            jobs_by[row.status] = jobs_by.get(row.status, 0) + row.jobs
            if row.status in self._claimable:
                queued_by[row.handler] += row.queued
            elif row.queued:
                waiting.add_metric([row.handler, row.status], row.queued)
        for handler, n in sorted(queued_by.items()):
            depth.add_metric([handler], n)
        for handler, n in sorted(running_by.items()):
            in_flight.add_metric([handler], n)
        for status, n in jobs_by.items():
            jobs.add_metric([status], n)
        return [depth, waiting, in_flight, jobs]


def exposition(database: Collector | None = None) -> bytes:
    """This process's metrics in Prometheus text format, then the database gauges when given."""
    from prometheus_client import generate_latest

    text = generate_latest(REGISTRY)
    if database is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(database)
        text += generate_latest(scrape)
    return text


def serve_process_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics over HTTP on ``host:port`` (a background thread), for ``worker
    --metrics-port``: a separate worker's counters live in its own process."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)
