"""Result downloads over HTTP: built from the items so far while a job runs, the stored files once it has
finished, artifacts.zip only at the end; and the job list as CSV."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard, ItemContext
from batchyard.data.blobs import job_prefix

from ..integration.helpers import running_worker, wait_finished
from ..waits import wait_until
from .conftest import Keys, bearer

DOWNLOADS = ("results.jsonl", "errors.jsonl", "results.csv", "artifacts.zip")


@pytest.fixture
def release(app: Batchyard) -> Iterator[threading.Event]:
    """Registers ``gated``: items with ``wait`` block until the event is set, items with ``fail`` fail; the
    others succeed at once. Every succeeded item saves an artifact."""
    gate = threading.Event()

    @app.handler("gated", concurrency=16, max_attempts=1)
    def gated(item: dict[str, Any], ctx: ItemContext) -> dict[str, Any]:
        if item.get("fail"):
            raise ValueError(f"cannot process {ctx.key}")
        while item.get("wait") and not gate.wait(0.02) and not ctx.cancelled:
            pass
        ctx.save_artifact(f"{ctx.key}.txt", f"artifact of {ctx.key}")
        return {"n": item["n"], "label": f"item {item['n']}"}

    yield gate
    gate.set()


def gated_items() -> list[dict[str, Any]]:
    """k0..k3 succeed at once, k4 fails, k5..k7 wait for the gate."""
    items: list[dict[str, Any]] = [{"key": f"k{n}", "n": n} for n in range(8)]
    items[4]["fail"] = True
    for n in (5, 6, 7):
        items[n]["wait"] = True
    return items


def finished_counts(app: Batchyard, job_id: str) -> tuple[int, int]:
    job = app.store.jobs.get_job(job_id)
    return job.succeeded, job.failed


def submit_apart(app: Batchyard, handler: str, items: list[Any], **options: Any) -> str:
    """Job ids sort by creation time in milliseconds: keep submissions apart so the order is certain."""
    time.sleep(0.003)
    return app.submit(handler, items, **options).id


def lines(body: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


def csv_rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


def test_downloads_while_running_hold_the_items_finished_so_far(
    client: TestClient, app: Batchyard, keys: Keys, release: threading.Event
) -> None:
    job = app.service.submit("gated", gated_items(), owner="alice")
    base = f"/api/v1/jobs/{job.id}"
    with running_worker(app):
        try:
            wait_until(lambda: finished_counts(app, job.id) == (4, 1), what="the ungated items to finish")
            assert app.store.jobs.get_job(job.id).status == "running"

            results = client.get(f"{base}/results.jsonl", headers=bearer(keys.alice))
            assert results.status_code == 200
            assert results.headers["x-batchyard-partial"] == "true"
            assert results.headers["content-type"] == "application/x-ndjson"
            assert results.headers["content-disposition"] == f'attachment; filename="{job.id}-results.jsonl"'
            assert [(r["key"], r["status"], r["result"]) for r in lines(results.text)] == [
                (f"k{n}", "succeeded", {"n": n, "label": f"item {n}"}) for n in range(4)
            ]

            errors = lines(client.get(f"{base}/errors.jsonl", headers=bearer(keys.alice)).text)
            assert [(e["key"], e["error"]["type"], e["error"]["message"]) for e in errors] == [
                ("k4", "ValueError", "cannot process k4")
            ]

            table = client.get(f"{base}/results.csv", headers=bearer(keys.alice))
            assert table.headers["content-type"].startswith("text/csv")
            rows = csv_rows(table.text)
            assert [(r["key"], r["status"]) for r in rows] == [
                ("k0", "succeeded"),
                ("k1", "succeeded"),
                ("k2", "succeeded"),
                ("k3", "succeeded"),
                ("k4", "failed"),
            ]
            assert rows[2]["result.label"] == "item 2" and rows[4]["error_type"] == "ValueError"

            zipped = client.get(f"{base}/artifacts.zip", headers=bearer(keys.alice))
            assert zipped.status_code == 409
            error = zipped.json()["error"]
            assert error["code"] == "not_ready" and "running" in error["message"]
        finally:
            release.set()
        wait_finished(app, job.id)

    results = client.get(f"{base}/results.jsonl", headers=bearer(keys.alice))
    assert results.headers["x-batchyard-partial"] == "false"
    assert [r["key"] for r in lines(results.text)] == ["k0", "k1", "k2", "k3", "k5", "k6", "k7"]


def test_downloads_after_the_end_are_the_stored_files(
    client: TestClient, app: Batchyard, keys: Keys, release: threading.Event
) -> None:
    release.set()
    job = app.submit("gated", gated_items(), owner="alice")
    view = job.wait(timeout=60)
    assert view.job.status == "completed" and set(view.job.result_files) == set(DOWNLOADS)
    base = f"/api/v1/jobs/{job.id}"

    for name in ("results.jsonl", "errors.jsonl", "results.csv"):
        response = client.get(f"{base}/{name}", headers=bearer(keys.alice))
        assert response.status_code == 200
        assert response.headers["x-batchyard-partial"] == "false"
        with app.storage.open_read(f"{job_prefix(job.id)}/{name}") as stored:
            assert response.content == stored.read()
        assert int(response.headers["content-length"]) == len(response.content)

    table = client.get(f"{base}/results.csv", headers=bearer(keys.alice)).text
    assert table.splitlines()[0] == (  # no "result" column: every result's keys have columns of their own
        "key,status,attempts,duration_ms,error_type,error_message,result.n,result.label"
    )
    assert len(csv_rows(table)) == 8

    zipped = client.get(f"{base}/artifacts.zip", headers=bearer(keys.alice))
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    assert zipped.headers["content-disposition"] == f'attachment; filename="{job.id}-artifacts.zip"'
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        names = sorted(archive.namelist())
        assert names == [f"k{n}.txt" for n in (0, 1, 2, 3, 5, 6, 7)]
        assert archive.read("k6.txt") == b"artifact of k6"


def test_a_job_without_artifacts_has_no_zip(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    job.wait(timeout=60)
    response = client.get(f"/api/v1/jobs/{job.id}/artifacts.zip", headers=bearer(keys.alice))
    assert response.status_code == 404
    assert "saved none" in response.json()["error"]["message"]


def test_a_stored_file_gone_missing_is_built_again(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """A retry deletes the result files; a download racing with it falls back to building them."""
    job = app.submit("echo", [{"key": f"e{n}", "n": n} for n in range(3)], owner="alice")
    job.wait(timeout=60)
    app.storage.delete(f"{job_prefix(job.id)}/results.jsonl")
    response = client.get(f"/api/v1/jobs/{job.id}/results.jsonl", headers=bearer(keys.alice))
    assert response.status_code == 200 and response.headers["x-batchyard-partial"] == "true"
    assert [r["key"] for r in lines(response.text)] == ["e0", "e1", "e2"]


def test_result_downloads_are_owner_scoped(client: TestClient, app: Batchyard, keys: Keys) -> None:
    job = app.submit("echo", [{"n": 1}], owner="alice")
    job.wait(timeout=60)
    for name in DOWNLOADS:
        url = f"/api/v1/jobs/{job.id}/{name}"
        as_bob = client.get(url, headers=bearer(keys.bob))
        assert as_bob.status_code == 404 and as_bob.json()["error"]["message"] == f"no job {job.id!r}"
        assert client.get(url).status_code == 401
        expected = 404 if name == "artifacts.zip" else 200  # echo saves no artifacts
        assert client.get(url, headers=bearer(keys.vera)).status_code == expected
        assert client.get(url, headers=bearer(keys.root)).status_code == expected
    missing = client.get("/api/v1/jobs/job_000000000000ffffffff/results.jsonl", headers=bearer(keys.alice))
    assert missing.status_code == 404


def test_results_csv_never_holds_a_live_formula(client: TestClient, app: Batchyard, keys: Keys) -> None:
    """Issue 11: results.csv wrote ``=cmd|calc`` and ``@SUM(1)`` raw (CSV injection); jobs.csv already guarded."""

    @app.handler("formulas", max_attempts=1)
    def formulas(item: dict[str, Any], ctx: ItemContext) -> Any:
        if item.get("fail"):
            raise ValueError('=HYPERLINK("http://evil.example")')
        return item["result"]

    job = app.submit(
        "formulas",
        [
            {"custom_id": "=cmd|' /C calc'!A0", "result": {"v": "=cmd|calc", "n": -5, "w": "@SUM(1)"}},
            {"custom_id": "@k", "result": "@SUM(1)"},
            {"custom_id": "+k", "result": {"v": "+1+1", "n": -1.5}},
            {"custom_id": "-k", "fail": True},
        ],
        owner="alice",
    )
    job.wait(timeout=60)
    body = client.get(f"/api/v1/jobs/{job.id}/results.csv", headers=bearer(keys.alice)).text
    cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "@", "+", "\t", "\r") or (c[:1] == "-" and not c[1:2].isdigit())]
    rows = csv_rows(body)
    assert [r["key"] for r in rows] == ["'=cmd|' /C calc'!A0", "'@k", "'+k", "'-k"]
    assert (rows[0]["result.v"], rows[0]["result.n"], rows[0]["result.w"]) == ("'=cmd|calc", "-5", "'@SUM(1)")
    assert rows[2]["result.n"] == "-1.5" and rows[3]["error_message"].startswith("'=HYPERLINK(")


def test_job_list_as_csv(client: TestClient, app: Batchyard, keys: Keys) -> None:
    first = app.job(submit_apart(app, "echo", [{"n": 1}, {"n": 2}], owner="alice", project="=cmd|calc"))
    first.wait(timeout=60)
    second = app.job(submit_apart(app, "sleep", [{"ms": 1}], owner="alice", project="reports"))
    bobs = app.job(submit_apart(app, "echo", [{"n": 3}], owner="bob"))

    response = client.get("/api/v1/jobs.csv", headers=bearer(keys.alice))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="jobs-')
    header = response.text.splitlines()[0]
    assert header == (
        "id,handler,status,owner,project,total,succeeded,failed,cancelled,skipped,percent,created_at,finished_at,cost,"
        "description,tags,started_at,duration_seconds"
    )
    rows = csv_rows(response.text)
    assert [r["id"] for r in rows] == [second.id, first.id]  # newest first, bob's job not there
    done = rows[1]
    assert (done["status"], done["total"], done["succeeded"], done["percent"]) == ("completed", "2", "2", "100.00")
    assert done["project"] == "'=cmd|calc"  # never a live formula in a spreadsheet
    assert done["created_at"].endswith("Z") and done["finished_at"].endswith("Z")
    assert rows[0]["finished_at"] == ""

    def ids(**params: Any) -> list[str]:
        r = client.get("/api/v1/jobs.csv", params=params, headers=bearer(keys.root))
        assert r.status_code == 200, r.text
        return [row["id"] for row in csv_rows(r.text)]

    assert ids() == [bobs.id, second.id, first.id]  # an admin sees every owner
    assert ids(status="completed") == [first.id]
    assert ids(status=["queued", "completed"]) == [bobs.id, second.id, first.id]
    assert ids(handler="echo") == [bobs.id, first.id]
    assert ids(project="reports") == [second.id]
    assert client.get("/api/v1/jobs.csv", params={"status": "done"}, headers=bearer(keys.root)).status_code == 422
    assert client.get("/api/v1/jobs.csv").status_code == 401


def test_job_list_csv_is_capped(
    client: TestClient, app: Batchyard, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchyard.services import results as result_service

    monkeypatch.setattr(result_service, "MAX_JOBS_CSV_ROWS", 3)
    monkeypatch.setattr(result_service, "JOBS_CSV_PAGE", 2)
    created = [submit_apart(app, "echo", [{"n": n}], owner="alice") for n in range(5)]
    rows = csv_rows(client.get("/api/v1/jobs.csv", headers=bearer(keys.alice)).text)
    assert [r["id"] for r in rows] == created[::-1][:3]
