"""With local storage, result files live in the data directory of the process that wrote them: when another
machine wrote them, the error says where they are instead of calling them missing (issue 6 item 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from batchyard import Batchyard, ItemContext, Settings
from batchyard.api import create_app
from batchyard.errors import NotFound
from batchyard.services.auth import AuthService, Role

from .conftest import bearer


def test_files_written_on_another_machine_are_located_not_called_missing(
    app: Batchyard, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.handler("render")
    def render(item: Any, ctx: ItemContext) -> None:
        ctx.save_artifact(f"{ctx.key}.txt", "drawn")

    monkeypatch.setattr("batchyard.services.maintenance.socket.gethostname", lambda: "worker-b")
    job = app.submit("render", [{"n": 1}, {"n": 2}], owner="alice")
    assert job.wait(timeout=60).job.result_files["artifacts.zip"]["host"] == "worker-b"
    monkeypatch.undo()

    # The server runs elsewhere: same database, a data directory of its own.
    server = Batchyard(settings.model_copy(update={"data_dir": tmp_path / "server"}))
    try:
        key = AuthService(server.store).create_key("alice", Role.MEMBER)[0]
        with TestClient(create_app(batchyard=server)) as client:
            zipped = client.get(f"/api/v1/jobs/{job.id}/artifacts.zip", headers=bearer(key))
            results = client.get(f"/api/v1/jobs/{job.id}/results.jsonl", headers=bearer(key))

        assert zipped.status_code == 404
        message = zipped.json()["error"]["message"]
        assert "artifacts.zip of job" in message and "written on host worker-b" in message
        assert "share one data directory" in message and "BATCHYARD_DATA_DIR" in message
        assert "saved none" not in message
        assert str(tmp_path) not in message  # an answer over HTTP names no server path
        assert results.status_code == 200 and len(results.text.splitlines()) == 2  # rebuilt from the database

        with pytest.raises(NotFound) as raised:  # the same from Python (and `batchyard jobs download`)
            server.job(job.id).download(tmp_path / "out")
        assert "written on host worker-b" in raised.value.message
        assert f"not in {tmp_path / 'server'}" in raised.value.message
    finally:
        server.close()


def test_a_job_without_artifacts_says_where_none_were_found(
    app: Batchyard, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = AuthService(app.store).create_key("alice", Role.MEMBER)[0]
    monkeypatch.setattr("batchyard.services.maintenance.socket.gethostname", lambda: "server-a")
    job = app.submit("echo", [{"n": 1}], owner="alice")
    job.wait(timeout=60)

    response = client.get(f"/api/v1/jobs/{job.id}/artifacts.zip", headers=bearer(key))

    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "saved none" in message and "(on host server-a)" in message and "another machine" in message
