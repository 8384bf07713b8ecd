"""The live stream (Server-Sent Events) against a real Uvicorn server on a free port, on SQLite and PostgreSQL.

Jobs are created through the service and run by an in-process worker; the streams are read with httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from batchyard import Batchyard
from batchyard.api import create_app
from batchyard.api.feed import JobChange, JobFeed, Subscription, close_job_feed, encode_cursor, job_feed
from batchyard.errors import StoreUnavailable
from batchyard.services.auth import AuthService, Principal, Role
from tests.integration.helpers import running_worker, wait_finished
from tests.waits import wait_until

from .conftest import Keys, bearer

EVENT_TIMEOUT = 20.0


@dataclass
class LiveServer:
    api: FastAPI
    server: uvicorn.Server
    url: str
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine_function: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine_function(), self.loop).result(timeout=10)

    @property
    def feed(self) -> JobFeed:
        feed: JobFeed = self.api.state.job_feed
        return feed


@pytest.fixture
def live(app: Batchyard) -> Iterator[LiveServer]:
    api = create_app(batchyard=app)
    config = uvicorn.Config(
        api, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the test server stopped before it started"
        return server.started

    wait_until(started, timeout=10, what="the test server to start")
    listener = server.servers[0]
    port = listener.sockets[0].getsockname()[1]
    live_server = LiveServer(api, server, f"http://127.0.0.1:{port}", listener.get_loop())

    async def install_feed() -> None:  # a quicker poll, keepalive and credential check than production
        feed = job_feed(api)
        feed.poll_interval = 0.2
        feed.keepalive = 0.5
        feed.credential_check_interval = 0.5

    live_server.call(install_feed)
    try:
        yield live_server
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the test server did not shut down"


@dataclass
class Event:
    event: str
    id: str | None
    data: Any


@dataclass
class EventReader:
    """Reads one stream in the background; ``events`` are the parsed events, ``comments`` the comment lines."""

    response: httpx.Response
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry_ms: int | None = None
    ended: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
                elif "retry" in fields:
                    self.retry_ms = int(fields.pop("retry"))
                elif "data" in fields:
                    data = json.loads(fields["data"])
                    self.events.append(Event(fields.get("event", "message"), fields.get("id"), data))
                    fields = {}
                else:
                    fields = {}
                self._changed.set()
        finally:
            self.ended = True
            self._changed.set()

    def jobs(self, job_id: str | None = None) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.event == "job" and (job_id is None or e.data["id"] == job_id)]

    async def wait_until(
        self, predicate: Callable[[EventReader], bool], what: str, timeout: float = EVENT_TIMEOUT
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self.ended:
                    raise AssertionError(f"the stream ended before {what}")
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    key: str | None,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[EventReader]:
    all_headers = {**(bearer(key) if key else {}), **(headers or {})}
    async with client.stream("GET", "/api/v1/stream", params=params, headers=all_headers) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        reader = EventReader(response)
        task = asyncio.create_task(reader.read())
        try:
            await reader.wait_until(lambda r: r.retry_ms is not None or r.ended, "the stream's first bytes")
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


def client_for(live: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.url, timeout=httpx.Timeout(10.0, read=30.0))


def items(n: int, ms: int = 0) -> list[dict[str, int]]:
    return [{"n": i, "ms": ms} for i in range(n)]


# -- tests -------------------------------------------------------------------------------------------------------


def test_a_running_job_streams_its_progress_until_completed(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with client_for(live) as client, open_stream(client, keys.alice) as stream:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-cache"
            assert stream.response.headers["x-accel-buffering"] == "no"
            assert stream.retry_ms == 2000
            job = app.service.submit("sleep", items(40, ms=25), owner="alice", description="streamed")
            await stream.wait_until(lambda s: bool(s.jobs(job.id)), "the new job's event")
            assert stream.jobs(job.id)[0]["status"] == "queued"
            with running_worker(app, concurrency=4):
                await stream.wait_until(lambda s: s.jobs(job.id)[-1]["status"] == "completed", "completed")
            seen = stream.jobs(job.id)
            done = [e["counts"]["done"] for e in seen]
            assert done == sorted(done), "the counters only move forward"
            assert any(0 < d < 40 for d in done), f"no progress in between was streamed: {done}"
            final = seen[-1]
            assert final["counts"]["succeeded"] == 40 and final["percent"] == 100.0
            assert final["description"] == "streamed" and final["result_files"]
            ids = [e.id for e in stream.events if e.event == "job"]
            assert all(ids) and len(set(ids)) == len(ids), "every event carries its own cursor as id"

    asyncio.run(scenario())


def test_many_streams_share_one_poller(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with client_for(live) as client, contextlib.AsyncExitStack() as streams:
            readers = [await streams.enter_async_context(open_stream(client, keys.alice)) for _ in range(20)]
            feed = live.feed
            assert feed.subscribers == 20
            polls_before, started = feed.polls, time.monotonic()
            await asyncio.sleep(2.0)  # the poll rate over a stretch of time is what is measured
            polls = feed.polls - polls_before
            intervals = (time.monotonic() - started) / feed.poll_interval
            assert 0.5 * intervals <= polls <= intervals + 2, f"{polls} polls in {intervals:.1f} intervals"
            assert feed.pollers_started == 1
            job = app.service.submit("echo", items(3), owner="alice")
            for reader in readers:
                await reader.wait_until(lambda r: bool(r.jobs(job.id)), "the job on every stream")
        # every client is gone: the subscriptions go at once and the poller stops on its next tick
        wait_until(lambda: live.feed.subscribers == 0, timeout=10, what="the subscriptions to end")
        wait_until(lambda: not live.feed.polling, timeout=10, what="the poller to stop")
        polls = live.feed.polls
        await asyncio.sleep(3 * live.feed.poll_interval)  # a window in which nothing may happen
        assert live.feed.polls == polls, "no polling while nobody listens"

    asyncio.run(scenario())


def test_reconnecting_with_last_event_id_replays_what_was_missed(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with client_for(live) as client:
            async with open_stream(client, keys.alice) as stream:
                first = app.service.submit("echo", items(5), owner="alice")
                await stream.wait_until(lambda s: bool(s.jobs(first.id)), "the first job")
                last_id = stream.events[-1].id
            assert last_id is not None
            # while disconnected: the first job runs to completion and a second one is created
            with running_worker(app):
                wait_finished(app, first.id)
            second = app.service.submit("echo", items(2), owner="alice")
            other = app.service.submit("echo", items(2), owner="bob")
            async with open_stream(client, keys.alice, headers={"Last-Event-ID": last_id}) as resumed:
                await resumed.wait_until(lambda s: bool(s.jobs(second.id)), "the replayed second job")
                replayed_first = resumed.jobs(first.id)
                assert replayed_first and replayed_first[-1]["status"] == "completed"
                assert replayed_first[-1]["counts"]["succeeded"] == 5
                assert resumed.jobs(second.id)[-1]["status"] == "queued"
                assert not resumed.jobs(other.id), "a replay shows only the caller's jobs"
            # the same cursor as a query parameter, for clients that cannot set headers
            async with open_stream(client, keys.alice, params={"resume_after": last_id}) as resumed:
                await resumed.wait_until(lambda s: bool(s.jobs(second.id)), "the replay via resume_after")

    asyncio.run(scenario())


def test_streams_show_only_jobs_the_caller_may_see(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with (
            client_for(live) as client,
            open_stream(client, keys.bob) as bob,
            open_stream(client, keys.vera) as vera,
            open_stream(client, keys.root) as root,
        ):
            alices = app.service.submit("echo", items(3), owner="alice")
            bobs = app.service.submit("echo", items(3), owner="bob")
            with running_worker(app):
                for stream in (bob, root):
                    await stream.wait_until(
                        lambda s: s.jobs(bobs.id)[-1:] != [] and s.jobs(bobs.id)[-1]["status"] == "completed",
                        "bob's job completed",
                    )
                await vera.wait_until(
                    lambda s: s.jobs(alices.id)[-1:] != [] and s.jobs(alices.id)[-1]["status"] == "completed",
                    "alice's job completed",
                )
                await root.wait_until(lambda s: bool(s.jobs(alices.id)), "alice's job for the admin")
            assert {j["owner"] for j in bob.jobs()} == {"bob"}
            assert {j["owner"] for j in vera.jobs()} == {"alice"}

    asyncio.run(scenario())


def test_following_one_job(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        followed = app.service.submit("echo", items(3), owner="alice")
        async with (
            client_for(live) as client,
            open_stream(client, keys.alice, params={"job_id": followed.id}) as stream,
        ):
            other = app.service.submit("echo", items(3), owner="alice")
            with running_worker(app):
                await stream.wait_until(
                    lambda s: s.jobs()[-1:] != [] and s.jobs()[-1]["status"] == "completed",
                    "the followed job completed",
                )
                wait_finished(app, other.id)
            assert {j["id"] for j in stream.jobs()} == {followed.id}

    asyncio.run(scenario())


def test_a_replay_too_long_to_send_asks_the_client_to_reload(
    app: Batchyard, live: LiveServer, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("batchyard.api.feed.REPLAY_LIMIT", 2)
    first = app.service.submit("echo", items(1), owner="alice")
    at = app.store.jobs.get_job(first.id).last_activity_at
    assert at is not None
    cursor = encode_cursor(at - 60, "job_before")  # a minute before everything here
    newest = [app.service.submit("echo", items(1), owner="alice").id for _ in range(3)]

    async def scenario() -> None:
        async with (
            client_for(live) as client,
            open_stream(client, keys.alice, headers={"Last-Event-ID": cursor}) as stream,
        ):
            await stream.wait_until(lambda s: len(s.events) >= 3, "a resync and the newest two jobs")
            assert stream.events[0].event == "resync" and "reload" in stream.events[0].data["reason"]
            assert [e.data["id"] for e in stream.events[1:3]] == newest[1:], "the most recent, oldest first"

    asyncio.run(scenario())


def test_a_database_outage_does_not_end_the_streams(
    app: Batchyard, live: LiveServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_poll = app.store.stats.recent_activity
    failed: list[float] = []

    def unavailable_twice(*args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        if len(failed) < 2:
            failed.append(time.monotonic())
            raise StoreUnavailable("database unavailable: connection refused")
        return real_poll(*args, **kwargs)

    async def scenario() -> None:
        async with client_for(live) as client, open_stream(client, keys.alice) as stream:
            monkeypatch.setattr(app.store.stats, "recent_activity", unavailable_twice)
            job = app.service.submit("echo", items(1), owner="alice")
            await stream.wait_until(lambda s: bool(s.jobs(job.id)), "the job once the database is back")
            assert len(failed) == 2 and not stream.ended

    with caplog.at_level(logging.INFO, logger="batchyard.api.feed"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "batchyard.api.feed"]
    assert sum("polling for job changes failed" in m for m in messages) == 1, "one warning per outage, not per poll"
    assert any("works again after 2 failure(s)" in m for m in messages)


def test_stream_errors(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    alices = app.service.submit("echo", items(1), owner="alice")
    with httpx.Client(base_url=live.url, timeout=10) as client:
        assert client.get("/api/v1/stream").status_code == 401
        response = client.get("/api/v1/stream", params={"job_id": alices.id}, headers=bearer(keys.bob))
        assert response.status_code == 404
        missing = client.get("/api/v1/stream", params={"job_id": "job_nope"}, headers=bearer(keys.bob))
        assert missing.status_code == 404
        assert response.json()["error"]["message"].replace(alices.id, "X") == missing.json()["error"][
            "message"
        ].replace("job_nope", "X"), "someone else's job reads as missing"
        bad = client.get("/api/v1/stream", headers={**bearer(keys.alice), "Last-Event-ID": "not-a-cursor"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "Last-Event-ID"
        assert "Last-Event-ID" in bad.json()["error"]["message"]


def test_keepalive_comments_flow_while_nothing_changes(live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with client_for(live) as client, open_stream(client, keys.alice) as stream:
            await stream.wait_until(lambda s: s.comments.count("keepalive") >= 2, "two keepalives", timeout=5)
            assert not stream.events

    asyncio.run(scenario())


def test_closing_the_feed_ends_open_streams(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    async def scenario() -> None:
        async with client_for(live) as client, open_stream(client, keys.alice) as stream:
            live.call(lambda: close_job_feed(live.api))  # what the application's shutdown does
            await stream.wait_until(lambda s: s.ended, "the stream to end", timeout=5)

    asyncio.run(scenario())


def test_revoking_a_key_ends_its_open_streams(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    """Issue 11: an open stream kept delivering new jobs after its key was revoked."""
    key, record = AuthService(app.store).create_key("alice", "member")

    async def scenario() -> None:
        async with (
            client_for(live) as client,
            open_stream(client, key) as doomed,
            open_stream(client, keys.alice) as other,
        ):
            await asyncio.to_thread(app.store.auth.revoke_api_key, record.id)  # what `batchyard keys revoke` does
            await doomed.wait_until(lambda s: s.ended, "the revoked key's stream to end", timeout=5)
            assert doomed.events[-1].event == "end"
            assert doomed.events[-1].data["code"] == "unauthenticated"
            job = app.service.submit("echo", items(1), owner="alice")
            await other.wait_until(lambda s: bool(s.jobs(job.id)), "the other key's stream to go on")
            assert not doomed.jobs(job.id)
        wait_until(lambda: live.feed.subscribers == 0, timeout=10, what="the streams to be forgotten")

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["sign out", "revoke the key"])
def test_a_session_stream_ends_when_the_session_does(app: Batchyard, live: LiveServer, how: str) -> None:
    """Issue 11: a dashboard stream outlived DELETE /api/v1/session and the revocation of the key signed in with."""
    key, record = AuthService(app.store).create_key("alice", "member")

    async def scenario() -> None:
        async with client_for(live) as client:
            signed_in = await client.post("/api/v1/session", json={"api_key": key})
            assert signed_in.status_code == 200
            async with open_stream(client, None) as stream:
                if how == "sign out":
                    assert (await client.delete("/api/v1/session")).status_code == 204
                else:
                    await asyncio.to_thread(app.store.auth.revoke_api_key, record.id)
                await stream.wait_until(lambda s: s.ended, "the session's stream to end", timeout=5)
                job = app.service.submit("echo", items(1), owner="alice")
                await asyncio.sleep(0.5)  # a window in which nothing may arrive
                assert not stream.jobs(job.id)
            assert (await client.get("/api/v1/stream")).status_code == 401

    asyncio.run(scenario())


def test_server_shutdown_ends_open_streams_cleanly(app: Batchyard, live: LiveServer, keys: Keys) -> None:
    """Uvicorn waits for open responses before the application's shutdown; with ``timeout_graceful_shutdown``
    (as ``batchyard serve`` should set) it cancels them, the streams end and the feed stops with nothing left."""

    async def scenario() -> None:
        async with client_for(live) as client, open_stream(client, keys.alice) as stream:
            feed = live.feed
            assert feed.polling
            live.server.should_exit = True
            await stream.wait_until(lambda s: s.ended, "the stream to end", timeout=10)
        wait_until(
            lambda: feed.closed and not feed.polling and feed.subscribers == 0, timeout=10, what="the feed to close"
        )

    asyncio.run(scenario())


def test_cursor_of_a_job_that_changed_in_the_same_instant_as_others(
    app: Batchyard, live: LiveServer, keys: Keys
) -> None:
    """Two jobs finished in one transaction share a timestamp; a cursor at the first still replays the second."""
    a = app.service.submit("echo", items(1), owner="alice")
    b = app.service.submit("echo", items(1), owner="alice")
    at = app.store.jobs.get_job(a.id).last_activity_at
    assert at is not None
    cursor = encode_cursor(at, a.id)

    async def scenario() -> None:
        async with (
            client_for(live) as client,
            open_stream(client, keys.alice, headers={"Last-Event-ID": cursor}) as stream,
        ):
            await stream.wait_until(lambda s: bool(s.jobs(b.id)), "the job after the cursor")

    asyncio.run(scenario())


def test_the_stream_is_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/api/v1/stream"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["text/event-stream"]
    for status in ("400", "401", "404", "503"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in spec["components"]["schemas"], f"{status}: dangling {ref}"
    parameters = {p["name"] for p in spec["paths"]["/api/v1/stream"]["get"]["parameters"]}
    assert parameters == {"job_id", "Last-Event-ID", "resume_after"}


def test_a_slow_client_gets_the_latest_state_of_each_job_and_never_unbounded_memory() -> None:
    def change(job_id: str, at: float, owner: str = "alice") -> JobChange:
        return JobChange(job_id, owner, at, encode_cursor(at, job_id), b"")

    async def scenario() -> None:
        sub = Subscription(Principal("alice", Role.MEMBER), None, capacity=2)
        sub.put(change("job_a", 1.0))
        sub.put(change("job_b", 2.0))
        sub.put(change("job_a", 3.0))  # replaces job_a's older state, still waiting
        sub.put(change("job_c", 4.0))  # a third job waiting: the oldest one (job_b) is dropped
        assert sub.dropped == 1
        received = [await sub.next(timeout=0.01) for _ in range(3)]
        assert [(c.job_id, c.changed_at) for c in received if c] == [("job_a", 3.0), ("job_c", 4.0)]
        assert received[-1] is None, "nothing left: the wait times out (and the stream sends a keepalive)"
        assert not sub.wants(change("job_x", 5.0, owner="bob"))
        sub.close()
        assert await sub.next(timeout=5) is None and sub.closed

    asyncio.run(scenario())


def test_a_one_item_job_shows_each_of_its_10_progress_steps_over_the_api_and_the_stream(
    app: Batchyard, live: LiveServer, keys: Keys
) -> None:
    step = threading.Semaphore(0)  # the test lets the handler take one step at a time

    @app.handler("import_file", concurrency=1)
    def import_file(item: dict[str, Any], ctx: Any) -> dict[str, int]:
        for i in range(1, 11):
            assert step.acquire(timeout=EVENT_TIMEOUT)
            ctx.progress(i * 100, 1000, f"rows {i * 100} of 1000")
        assert step.acquire(timeout=EVENT_TIMEOUT)
        return {"rows": 1000}

    async def api_job(client: httpx.AsyncClient, job_id: str, until: Callable[[dict[str, Any]], bool]) -> Any:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                response = await client.get(f"/api/v1/jobs/{job_id}", headers=bearer(keys.alice))
                assert response.status_code == 200, response.text
                if until(body := response.json()):
                    return body
                await asyncio.sleep(0.02)

    def at_step(i: int) -> Callable[[dict[str, Any]], bool]:
        return lambda job: bool(job["current"]) and job["current"][0]["done"] == i * 100

    async def scenario() -> None:
        job = app.service.submit("import_file", [{"custom_id": "orders.csv"}], owner="alice")
        async with client_for(live) as client, open_stream(client, keys.alice, params={"job_id": job.id}) as stream:
            seen_over_api = []
            with running_worker(app):
                await api_job(client, job.id, lambda j: j["status"] == "running")
                for i in range(1, 11):
                    step.release()
                    body = await api_job(client, job.id, at_step(i))
                    reached = at_step(i)
                    await stream.wait_until(lambda s: any(reached(j) for j in s.jobs()), f"step {i} streamed")  # noqa: B023
                    seen_over_api.append(body)
                step.release()
                await stream.wait_until(lambda s: s.jobs()[-1]["status"] == "completed", "completed")

            assert [b["current"] for b in seen_over_api] == [
                [{"key": "orders.csv", "done": i * 100.0, "total": 1000.0, "message": f"rows {i * 100} of 1000",
                  "updated_at": b["current"][0]["updated_at"]}]
                for i, b in enumerate(seen_over_api, 1)
            ]  # fmt: skip
            assert [b["percent"] for b in seen_over_api] == [10.0 * i for i in range(1, 11)]
            assert [b["running_progress"] for b in seen_over_api] == [i / 10 for i in range(1, 11)]
            assert [b["counts"]["done"] for b in seen_over_api] == [0] * 10  # the item itself is not done yet
            assert all(b["items_per_second"] > 0 and b["eta_seconds"] is not None for b in seen_over_api[1:-1])
            streamed = [j["current"][0]["message"] for j in stream.jobs() if j["current"]]
            assert list(dict.fromkeys(streamed)) == [f"rows {i * 100} of 1000" for i in range(1, 11)]
            final = stream.jobs()[-1]
            assert (final["percent"], final["running_progress"], final["current"]) == (100.0, 0.0, [])

    asyncio.run(scenario())
