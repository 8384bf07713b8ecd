"""The ``http`` handler in a real ``batchyard worker`` subprocess: requests, retries, and the address guard (SSRF):
loopback, private, metadata and DNS names resolving to them are refused, after resolution and on redirects."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchyard import Batchyard, Settings
from batchyard.core.records import ItemRecord
from tests.e2e.test_openai_handler import WorkerProcess, free_port
from tests.integration.helpers import wait_finished
from tests.upstream import MockUpstreamProcess


def run_http_items(tmp_path: Path, name: str, items: list[dict[str, Any]], **env: str) -> dict[str, ItemRecord]:
    """Process ``items`` with the http handler in a worker subprocess started with ``env``; items by key."""
    data_dir = tmp_path / name
    app = Batchyard(Settings(data_dir=data_dir))
    worker = WorkerProcess(data_dir, "--handlers", "http", env=env)
    try:
        job = app.submit("http", items, max_attempts=1)
        view = wait_finished(app, job.id, timeout=60)
        assert view.job.status == "completed"
        return {item.key: item for item in app.store.items.iter_items(job.id)}
    finally:
        worker.stop()
        app.close()


def refused(item: ItemRecord, *phrases: str) -> None:
    assert item.status == "failed", item
    assert item.error is not None and item.error["code"] == "url_refused", item.error
    assert item.error["retryable"] is False
    for phrase in phrases:
        assert phrase in item.error["message"], item.error["message"]


def test_private_targets_are_refused_by_default(tmp_path: Path, mock_upstream: MockUpstreamProcess) -> None:
    port = mock_upstream.url.split(":")[2].split("/")[0]
    items = {
        "loopback": f"http://127.0.0.1:{port}/_echo",
        "localhost": f"http://localhost:{port}/_echo",  # a name resolving to loopback: checked after DNS
        "ten": "http://10.0.0.1/",
        "ipv6-loopback": f"http://[::1]:{port}/_echo",
        "mapped": f"http://[::ffff:127.0.0.1]:{port}/_echo",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
        "scheme": "file:///etc/passwd",
    }
    results = run_http_items(tmp_path, "default", [{"key": k, "url": u} for k, u in items.items()])
    refused(results["loopback"], "127.0.0.1", "loopback", "BATCHYARD_ALLOW_PRIVATE_URLS")
    refused(results["localhost"], "localhost (", "loopback")
    refused(results["ten"], "10.0.0.1", "private")
    refused(results["ipv6-loopback"], "loopback")
    refused(results["mapped"], "loopback")
    refused(results["metadata"], "cloud metadata", "refused always")
    refused(results["metadata-v6"], "cloud metadata")
    refused(results["scheme"], "only http and https")
    assert mock_upstream.stats()["requests"] == 0  # nothing reached it


def test_allowed_private_targets_and_the_checks_on_every_redirect(
    tmp_path: Path, mock_upstream: MockUpstreamProcess
) -> None:
    root = mock_upstream.root
    port = root.rsplit(":", 1)[1]
    dead = free_port()

    def via_redirect(target: str, status: int = 302) -> str:
        return f"{root}/_redirect?status={status}&to={quote(target, safe='')}"

    six_redirects = root
    for _ in range(6):
        six_redirects = via_redirect(six_redirects)
    items: list[dict[str, Any]] = [
        {"key": "get", "url": f"{root}/_echo?x=1", "headers": {"X-Trace": "t1"}},
        {"key": "post-json", "url": f"{root}/_echo", "method": "POST", "body": {"a": [1, 2]}},
        {"key": "localhost", "url": f"http://localhost:{port}/_echo"},
        {"key": "redirected", "url": via_redirect(f"{root}/_echo?hop=2", 307), "method": "PUT", "body": "text"},
        {"key": "redirect-to-metadata", "url": via_redirect("http://169.254.169.254/latest/meta-data/")},
        {"key": "metadata", "url": "http://169.254.169.254/"},
        {"key": "loop", "url": six_redirects},
        {"key": "not-found", "url": f"{root}/nowhere"},
        {"key": "unreachable", "url": f"http://127.0.0.1:{dead}/"},
        {"key": "retried", "url": f"{root}/v1/embeddings", "method": "POST",
         "body": {"model": "m", "input": "http retried", "mock": {"fail": [503], "retry_after": 0.2}}},
    ]  # fmt: skip
    results = run_http_items(
        tmp_path, "allowed", items, BATCHYARD_ALLOW_PRIVATE_URLS="true", BATCHYARD_UPSTREAM_MAX_RETRIES="1"
    )
    get = results["get"].result
    assert get["status_code"] == 200 and get["body"]["method"] == "GET" and get["body"]["path"] == "/_echo?x=1"
    assert get["body"]["headers"]["x-trace"] == "t1"
    post = results["post-json"].result
    assert post["body"]["body"] == '{"a":[1,2]}' and post["body"]["headers"]["content-type"] == "application/json"
    assert results["localhost"].status == "succeeded"
    redirected = results["redirected"].result
    assert redirected["url"].endswith("/_echo?hop=2") and redirected["body"]["method"] == "PUT"  # 307 keeps it
    assert redirected["body"]["body"] == "text"
    refused(results["redirect-to-metadata"], "cloud metadata")
    refused(results["metadata"], "cloud metadata")
    loop = results["loop"]
    assert loop.error is not None and loop.error["code"] == "too_many_redirects"
    missing = results["not-found"]
    assert missing.error is not None and missing.error["code"] == "http_404" and missing.error["retryable"] is False
    assert missing.error["detail"]["status_code"] == 404
    unreachable = results["unreachable"]
    assert unreachable.error is not None and unreachable.error["code"] == "upstream_unreachable"
    assert results["retried"].status == "succeeded"
    assert len(mock_upstream.stats()["arrivals"]["http retried"]) == 2


def test_a_redirect_to_a_private_address_is_refused(tmp_path: Path, mock_upstream: MockUpstreamProcess) -> None:
    """Only the mock's own address is allowed here (as an operator allows one internal network): a redirect from
    it to another private or loopback address is checked again and refused."""
    root = mock_upstream.root
    port = root.rsplit(":", 1)[1]

    def via_redirect(target: str) -> str:
        return f"{root}/_redirect?to={quote(target, safe='')}"

    items = [
        {"key": "allowed", "url": f"{root}/_echo"},
        {"key": "to-ten", "url": via_redirect("http://10.0.0.1/admin")},
        {"key": "to-other-loopback", "url": via_redirect(f"http://127.0.0.2:{port}/_echo")},
        {"key": "to-localhost-name", "url": via_redirect(f"http://localhost:{port}/_echo")},
    ]
    results = run_http_items(tmp_path, "one-network", items, BATCHYARD_ALLOWED_PRIVATE_NETWORKS='["127.0.0.1/32"]')
    assert results["allowed"].status == "succeeded"
    refused(results["to-ten"], "10.0.0.1", "private")
    refused(results["to-other-loopback"], "127.0.0.2", "loopback")
    # localhost resolves to 127.0.0.1 (allowed) and maybe ::1 (refused): only the checked address is used
    assert results["to-localhost-name"].status == "succeeded"
    assert mock_upstream.stats()["by_endpoint"]["/_redirect"] == 3
