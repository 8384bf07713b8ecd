"""Webhooks over HTTP: endpoints (secret shown once), pages, owners and roles, the delivery log and redelivery,
URLs refused at creation, and a job's own webhook_url and notify_emails."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from batchyard import Batchyard, Settings
from batchyard.api import create_app
from batchyard.core.notifications import EVENT_TYPES

from ..integration.helpers import running_worker, wait_finished
from ..receiver import run_receiver
from .conftest import Keys, bearer

HOOKS = "/api/v1/webhooks"
PUBLIC_URL = "https://hooks.example.com/in"


def _add(client: TestClient, key: str, **body: Any) -> Any:
    response = client.post(HOOKS, json={"url": PUBLIC_URL, **body}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


def test_an_endpoint_is_made_with_its_secret_shown_once(client: TestClient, keys: Keys) -> None:
    made = _add(client, keys.alice, events=["job.completed", "job.failed"])
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert (made["owner"], made["url"], made["events"]) == ("alice", PUBLIC_URL, ["job.completed", "job.failed"])
    shown = client.get(f"{HOOKS}/{made['id']}", headers=bearer(keys.alice)).json()
    listed = client.get(HOOKS, headers=bearer(keys.alice)).json()
    assert "secret" not in shown and all("secret" not in w for w in listed["data"])
    assert made["secret"] not in client.get(HOOKS, headers=bearer(keys.root)).text
    assert (listed["has_more"], listed["next_cursor"], [w["id"] for w in listed["data"]]) == (False, None, [made["id"]])
    everything = _add(client, keys.alice)  # events left out: all of them
    assert everything["events"] == []


def test_the_list_is_a_page_with_a_cursor(client: TestClient, keys: Keys) -> None:
    made = [_add(client, keys.alice)["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(HOOKS, params=params, headers=bearer(keys.alice)).json()
        seen += [w["id"] for w in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == made
    bad = client.get(HOOKS, params={"cursor": "wh_nope"}, headers=bearer(keys.alice))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"


@pytest.mark.parametrize("events", [["job.done"], ["job.completed", "batch.finished"], ["*"]])
def test_an_unknown_event_is_a_clear_400(client: TestClient, keys: Keys, events: list[str]) -> None:
    response = client.post(HOOKS, json={"url": PUBLIC_URL, "events": events}, headers=bearer(keys.alice))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "events" and error["code"] == "unknown_event"
    assert "job.completed" in error["message"]  # the known events are listed


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://[::1]:9/hook",
        "http://0x7f000001/hook",  # 127.0.0.1 written as one hex number: resolved, then refused
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_private_and_metadata_targets_are_refused_at_creation(client: TestClient, keys: Keys, url: str) -> None:
    response = client.post(HOOKS, json={"url": url}, headers=bearer(keys.alice))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("url", "url_refused")
    assert "refused to connect" in error["message"]


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "not a url", "http:///nohost"])
def test_only_http_urls_with_a_host(client: TestClient, keys: Keys, url: str) -> None:
    response = client.post(HOOKS, json={"url": url}, headers=bearer(keys.alice))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "url"


def test_a_name_that_resolves_into_a_private_network_is_refused(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "intranet.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    response = client.post(HOOKS, json={"url": "https://intranet.example.com/hook"}, headers=bearer(keys.alice))
    assert response.status_code == 400
    assert "intranet.example.com (10.20.30.40)" in response.json()["error"]["message"]


@pytest.fixture
def lenient(app: Batchyard) -> Iterator[tuple[Batchyard, TestClient]]:
    changes = {"allow_private_urls": True, "webhook_retry_schedule_seconds": [0.2], "outbox_poll_interval_ms": 50}
    other = Batchyard(app.settings.model_copy(update=changes), demo_handlers=True)
    with TestClient(create_app(batchyard=other)) as test_client:
        yield other, test_client
    other.close()


def test_metadata_stays_refused_when_private_targets_are_allowed(
    lenient: tuple[Batchyard, TestClient], keys: Keys
) -> None:
    _, client = lenient
    assert client.post(HOOKS, json={"url": "http://127.0.0.1:9/hook"}, headers=bearer(keys.alice)).status_code == 201
    for url in ("http://169.254.169.254/latest/", "http://[fd00:ec2::254]/"):
        refused = client.post(HOOKS, json={"url": url}, headers=bearer(keys.alice))
        assert refused.status_code == 400 and "refused always" in refused.json()["error"]["message"]


def test_other_owners_get_404_viewers_read_only_admins_everything(client: TestClient, keys: Keys) -> None:
    made = _add(client, keys.alice)
    path = f"{HOOKS}/{made['id']}"
    for method, url in (("GET", path), ("DELETE", path), ("GET", f"{path}/deliveries")):
        assert client.request(method, url, headers=bearer(keys.bob)).status_code == 404
    assert client.get(HOOKS, headers=bearer(keys.bob)).json()["data"] == []
    assert client.get(path, headers=bearer(keys.vera)).status_code == 200  # a viewer of alice reads
    assert [w["id"] for w in client.get(HOOKS, headers=bearer(keys.vera)).json()["data"]] == [made["id"]]
    refused = client.post(HOOKS, json={"url": PUBLIC_URL}, headers=bearer(keys.vera))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.delete(path, headers=bearer(keys.vera)).status_code == 403
    assert client.get(f"{HOOKS}/secret", headers=bearer(keys.vera)).status_code == 403
    # another owner's endpoint takes an admin, who sees and deletes everyone's
    assert client.post(HOOKS, json={"url": PUBLIC_URL, "owner": "bob"}, headers=bearer(keys.alice)).status_code == 403
    for_bob = _add(client, keys.root, owner="bob")
    assert for_bob["owner"] == "bob"
    assert {w["id"] for w in client.get(HOOKS, headers=bearer(keys.root)).json()["data"]} == {made["id"], for_bob["id"]}
    assert client.delete(path, headers=bearer(keys.root)).status_code == 204
    assert client.get(path, headers=bearer(keys.alice)).status_code == 404
    assert client.delete(path, headers=bearer(keys.alice)).status_code == 404


def test_the_delivery_log_and_a_redelivery(lenient: tuple[Batchyard, TestClient], keys: Keys) -> None:
    app, client = lenient
    with run_receiver([500]) as receiver:
        made = client.post(HOOKS, json={"url": receiver.url}, headers=bearer(keys.alice)).json()
        job = client.post(
            "/api/v1/jobs", json={"handler": "echo", "items": [{"n": 1}]}, headers=bearer(keys.alice)
        ).json()
        with running_worker(app):
            wait_finished(app, job["id"])
            receiver.wait_for(2)
            log = client.get(f"{HOOKS}/{made['id']}/deliveries", headers=bearer(keys.alice)).json()
            assert [(d["outcome"], d["status_code"]) for d in log["data"]] == [("delivered", 200), ("failed", 500)]
            first = log["data"][1]
            assert (first["event_type"], first["job_id"]) == ("job.completed", job["id"])
            assert first["error"] == "answered HTTP 500" and first["webhook_id"].startswith("msg_")
            assert isinstance(first["at"], float) and first["duration_ms"] >= 0
            page = client.get(f"{HOOKS}/{made['id']}/deliveries", params={"limit": 1}, headers=bearer(keys.alice))
            assert page.json()["has_more"] is True
            rest = client.get(
                f"{HOOKS}/{made['id']}/deliveries",
                params={"limit": 1, "cursor": page.json()["next_cursor"]},
                headers=bearer(keys.alice),
            ).json()
            assert [d["id"] for d in rest["data"]] == [first["id"]] and rest["has_more"] is False

            again = client.post(f"{HOOKS}/{made['id']}/deliveries/{first['id']}/redeliver", headers=bearer(keys.alice))
            assert again.status_code == 202, again.text
            assert again.json()["webhook_id"] == first["webhook_id"] and again.json()["status"] == "pending"
            requests = receiver.wait_for(3)
        assert requests[2].headers["webhook-id"] == first["webhook_id"]
        assert Webhook(made["secret"]).verify(requests[2].body, requests[2].headers)["data"]["id"] == job["id"]
    missing = client.post(f"{HOOKS}/{made['id']}/deliveries/999999/redeliver", headers=bearer(keys.alice))
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "delivery_id"
    by_bob = client.post(f"{HOOKS}/{made['id']}/deliveries/{first['id']}/redeliver", headers=bearer(keys.bob))
    assert by_bob.status_code == 404


def test_a_job_names_its_own_webhook_signed_with_the_default_secret(
    lenient: tuple[Batchyard, TestClient], keys: Keys
) -> None:
    app, client = lenient
    with run_receiver() as receiver:
        created = client.post(
            "/api/v1/jobs",
            json={"handler": "echo", "items": [{"n": 1}], "webhook_url": receiver.url, "notify_emails": []},
            headers=bearer(keys.alice),
        )
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["webhook_url"] == receiver.url and job["notify_emails"] == []
        secret = client.get(f"{HOOKS}/secret", headers=bearer(keys.alice)).json()
        assert secret["owner"] == "alice" and secret["secret"].startswith("whsec_")
        with running_worker(app):
            wait_finished(app, job["id"])
            request = receiver.wait_for(1)[0]
        payload = Webhook(secret["secret"]).verify(request.body, request.headers)
        assert set(payload) == {"type", "timestamp", "data"}
        assert payload["type"] == "job.completed" and payload["timestamp"].endswith("Z")
        shown = client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(keys.alice)).json()
        assert payload["data"]["id"] == shown["id"] and payload["data"]["counts"] == shown["counts"]
    listed = client.get(f"/api/v1/jobs/{job['id']}/notifications", headers=bearer(keys.alice)).json()["data"]
    assert [(n["kind"], n["event_type"], n["url"], n["status"], n["endpoint_id"]) for n in listed] == [
        ("webhook", "job.completed", receiver.url, "delivered", None)
    ]
    assert listed[0]["webhook_id"] == request.headers["webhook-id"] and listed[0]["last_status_code"] == 200
    assert client.get(f"/api/v1/jobs/{job['id']}/notifications", headers=bearer(keys.vera)).status_code == 200
    assert client.get(f"/api/v1/jobs/{job['id']}/notifications", headers=bearer(keys.bob)).status_code == 404
    assert client.get(f"{HOOKS}/secret", headers=bearer(keys.alice)).json() == secret  # the same every time
    assert client.get(f"{HOOKS}/secret", headers=bearer(keys.bob)).json()["secret"] != secret["secret"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"webhook_url": "http://127.0.0.1:9/hook"}, "webhook_url"),
        ({"webhook_url": "http://169.254.169.254/"}, "webhook_url"),
        ({"webhook_url": "gopher://example.com/"}, "webhook_url"),
        ({"notify_emails": ["not-an-address"]}, "notify_emails"),
        ({"notify_emails": [f"u{i}@example.com" for i in range(21)]}, "notify_emails"),
    ],
)
def test_a_jobs_webhook_url_and_emails_are_checked_at_submit(
    client: TestClient, keys: Keys, body: dict[str, Any], param: str
) -> None:
    response = client.post(
        "/api/v1/jobs", json={"handler": "echo", "items": [{"n": 1}], **body}, headers=bearer(keys.alice)
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["param"] == param
    assert client.get("/api/v1/jobs", headers=bearer(keys.alice)).json()["data"] == []  # nothing was made


def test_notify_emails_are_kept_and_shown(client: TestClient, keys: Keys) -> None:
    created = client.post(
        "/api/v1/jobs",
        json={"handler": "echo", "items": [{"n": 1}], "notify_emails": ["ops@example.com", "ann@example.org"]},
        headers=bearer(keys.alice),
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    shown = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(keys.alice)).json()
    assert shown["notify_emails"] == ["ops@example.com", "ann@example.org"] and shown["webhook_url"] is None
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(keys.alice)).status_code == 200
    [email] = client.get(f"/api/v1/jobs/{job_id}/notifications", headers=bearer(keys.alice)).json()["data"]
    # one email for the cancelled job, waiting for its result files before it goes out
    assert (email["kind"], email["event_type"], email["status"]) == ("email", "job.cancelled", "pending")
    assert email["next_attempt_at"] is None and email["url"] is None


def test_the_event_list_is_documented_in_the_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    described = schema["components"]["schemas"]["WebhookCreate"]["properties"]["events"]["description"]
    assert all(event in described for event in EVENT_TYPES)


def test_settings_refuse_a_bad_schedule() -> None:
    with pytest.raises(ValueError, match="0 to 604800"):
        Settings(webhook_retry_schedule_seconds=[5, -1])


def test_an_openai_batch_sends_batch_events_with_the_batch_object(
    lenient: tuple[Batchyard, TestClient], keys: Keys
) -> None:
    """A batch made through /v1/batches whose input is invalid fails at validation: the endpoint gets
    batch.failed with the batch as GET /v1/batches/{id} shows it (and no job.failed)."""
    app, client = lenient
    with run_receiver() as receiver:
        made = client.post(
            HOOKS, json={"url": receiver.url, "events": ["batch.failed", "job.failed"]}, headers=bearer(keys.alice)
        ).json()
        upload = client.post(
            "/v1/files",
            files={"file": ("bad.jsonl", b'{"custom_id": "a"}\nnot json\n')},
            data={"purpose": "batch"},
            headers=bearer(keys.alice),
        )
        assert upload.status_code == 200, upload.text
        batch = client.post(
            "/v1/batches",
            json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
            headers=bearer(keys.alice),
        ).json()
        with running_worker(app):
            request = receiver.wait_for(1)[0]
            shown = client.get(f"/v1/batches/{batch['id']}", headers=bearer(keys.alice)).json()
        payload = Webhook(made["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "batch.failed" and len(receiver.requests) == 1
        assert payload["data"]["id"] == batch["id"] and payload["data"]["object"] == "batch"
        assert payload["data"]["status"] == shown["status"] == "failed"
        assert payload["data"]["errors"] == shown["errors"]
