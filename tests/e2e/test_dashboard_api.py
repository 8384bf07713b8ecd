"""The dashboard's API from a client's side, against a real ``batchyard serve``: the job list's filters and its
CSV export, and error groups (list, export, retry one group) through :class:`batchyard.client.Client`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from batchyard.client import Client
from batchyard.errors import ApiError

from ..waits import wait_until
from .test_serve import free_port, running_server


def test_filters_csv_and_error_groups_through_the_client(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port())) as server:
        with Client(server.url, server.create_key("alice")) as api:
            ok = api.create_job("echo", items=[{"n": 1}], description="March mailing", tags=["march"], wait=30)
            failing = api.create_job(
                "flaky",
                items=[{"custom_id": f"k{i}", "failure_rate": 1.0, "permanent": True} for i in range(5)],
                description="always fails",
                wait=30,
            )
            assert (ok.status, failing.status, failing.counts.failed) == ("completed", "completed", 5)

            assert [j.id for j in api.list_jobs(statuses=["completed"], q="march").data] == [ok.id]
            assert [j.id for j in api.list_jobs(statuses=["active"]).data] == []
            exported = b"".join(api.iter_jobs_csv(statuses=["finished"], sort="created_at")).decode()
            assert [row["id"] for row in csv.DictReader(io.StringIO(exported))] == [ok.id, failing.id]

            groups = api.error_groups(failing.id).data
            assert [(g.count, g.code, g.message) for g in groups] == [
                (5, "flaky", "simulated failure (failure_rate=<num>)")
            ]
            size = api.download_error_group(failing.id, groups[0].signature, tmp_path / "group.jsonl")
            lines = [json.loads(line) for line in (tmp_path / "group.jsonl").read_text().splitlines()]
            assert size > 0 and [line["key"] for line in lines] == [f"k{i}" for i in range(5)]
            assert lines[0]["payload"]["failure_rate"] == 1.0

            retried = api.retry_job(failing.id, error_group=groups[0].signature)
            assert retried.retried == 5
            wait_until(lambda: api.get_job(failing.id).finished, timeout=30, what="the retried job to finish")
            with pytest.raises(ApiError) as refused:
                api.retry_job(failing.id, error_group="0" * 16)
            assert refused.value.status == 404 and refused.value.code == "not_found"

            history = api.history(bucket="hour", recent=5)
            assert history.totals.jobs.completed == 2 and history.totals.items_failed == 5
            assert {j.id for j in history.recent} == {ok.id, failing.id}

            dry = api.bulk("delete", filter={"status": ["finished"]}, dry_run=True)
            assert (dry.matched, dry.affected, dry.results) == (2, 2, [])
            deleted = api.bulk("delete", filter={"status": ["finished"]})
            assert deleted.affected == 2 and {r.outcome for r in deleted.results} == {"done"}
            assert api.list_jobs().data == []
        assert server.stop() == 0
