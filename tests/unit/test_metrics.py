"""batchyard/metrics.py: what a flush counts, how the database gauges add up, and that the Grafana dashboard in
deploy/ only asks for metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batchyard import metrics
from batchyard.core.lifecycle import CLAIMABLE_JOB_STATUSES
from batchyard.metrics import DatabaseGauges, QueueRow

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json"


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_flush_counts_processing_outcomes_per_handler_and_leaves_out_hand_backs() -> None:
    before = {
        kind: value("batchyard_items_processed_total", handler="unit-h", outcome=kind)
        for kind in ("succeeded", "failed", "retried", "release", "rescue", "cancelled")
    }
    flushes = value("batchyard_flush_seconds_count")
    metrics.record_flush(
        0.004,
        {("unit-h", "succeeded"): 7, ("unit-h", "failed"): 2, ("unit-h", "retry"): 3, ("unit-h", "release"): 5}
        | {("unit-h", "rescue"): 1, ("unit-h", "cancelled"): 4},
    )
    after = {kind: value("batchyard_items_processed_total", handler="unit-h", outcome=kind) for kind in before}
    assert {k: after[k] - before[k] for k in before} == {
        "succeeded": 7,
        "failed": 2,
        "retried": 3,
        "release": 0,
        "rescue": 0,
        "cancelled": 0,
    }
    assert value("batchyard_flush_seconds_count") == flushes + 1


def test_database_gauges_split_claimable_queue_from_paused_and_count_every_unfinished_status() -> None:
    rows = [
        QueueRow("echo", "running", 2, 100, 8),
        QueueRow("echo", "queued", 1, 50, 0),
        QueueRow("echo", "paused", 1, 30, 2),
        QueueRow("sleep", "cancelling", 1, 0, 3),
    ]
    gauges = DatabaseGauges(lambda: rows, CLAIMABLE_JOB_STATUSES, ["queued", "running", "paused", "cancelling", "x"])
    scraped = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in gauges.collect() for s in f.samples}
    assert scraped[("batchyard_queue_depth", (("handler", "echo"),))] == 150
    assert scraped[("batchyard_queue_depth", (("handler", "sleep"),))] == 0
    assert scraped[("batchyard_items_waiting", (("handler", "echo"), ("status", "paused")))] == 30
    assert scraped[("batchyard_items_in_flight", (("handler", "echo"),))] == 10
    assert scraped[("batchyard_items_in_flight", (("handler", "sleep"),))] == 3
    assert scraped[("batchyard_jobs", (("status", "running"),))] == 2
    assert scraped[("batchyard_jobs", (("status", "x"),))] == 0  # every status shown, zero when none


def test_hooks_count_and_the_exposition_parses() -> None:
    metrics.record_upstream_request("openai", 429, 0.25)
    metrics.record_upstream_request("openai", "timeout")
    metrics.record_webhook_delivery("delivered")
    metrics.record_email_delivery("failed")
    metrics.record_quota_pause("tokens")
    names = {s.name for f in text_string_to_metric_families(metrics.exposition().decode()) for s in f.samples}
    assert {
        "batchyard_upstream_requests_total",
        "batchyard_upstream_request_seconds_bucket",
        "batchyard_webhook_deliveries_total",
        "batchyard_email_deliveries_total",
        "batchyard_quota_pauses_total",
    } <= names
    assert value("batchyard_upstream_requests_total", handler="openai", status="timeout") >= 1


def test_the_grafana_dashboard_asks_only_for_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    asked = {re.sub(r"_(total|bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"batchyard_\w+", e)}
    gauges = DatabaseGauges(lambda: [], CLAIMABLE_JOB_STATUSES, ["queued"])
    known = {f.name for f in metrics.REGISTRY.collect()} | {f.name for f in gauges.collect()}
    assert asked, "no batchyard metric in the dashboard"
    assert asked <= known, asked - known
    assert "batchyard_items_processed" in asked and "batchyard_queue_depth" in asked


def test_upstream_request_counts_the_status_or_why_none_came() -> None:
    def count(status: str) -> float:
        return value("batchyard_upstream_requests_total", handler="unit-up", status=status)

    before = {s: count(s) for s in ("201", "timeout", "cancelled", "error")}
    with metrics.upstream_request("unit-up") as call:
        call.status = 201
    for exc in (TimeoutError(), asyncio.CancelledError(), OSError()):
        with pytest.raises(type(exc)), metrics.upstream_request("unit-up"):
            raise exc
    assert {s: count(s) - before[s] for s in before} == {"201": 1, "timeout": 1, "cancelled": 1, "error": 1}
    assert value("batchyard_upstream_request_seconds_count", handler="unit-up") == 4
