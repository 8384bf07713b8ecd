"""What items report with ``ctx.progress`` in the CLI: ``jobs show`` (and ``--json``) and the progress bar."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from batchyard import Batchyard
from batchyard.cli.bar import JobProgress
from batchyard.core.records import ProgressReport
from batchyard.wire import JobOut


def _job_with_reports(data_dir: Path) -> tuple[Batchyard, str]:
    """A running job of three items, two of which reported progress (as a worker would have written it)."""
    app = Batchyard(data_dir=data_dir, demo_handlers=True)
    job = app.submit("echo", [{"custom_id": f"file-{i}"} for i in range(3)])
    batch = app.store.claims.claim_items("w1", {"echo": 3}, 300)
    assert batch is not None
    now = time.time()
    app.store.progress.record(
        [
            ProgressReport(job.id, 0, batch.lease_token, 250, 1000, "importing sheet 2", now),
            ProgressReport(job.id, 1, batch.lease_token, 17, None, "reading the header", now + 1),
        ]
    )
    return app, job.id


def test_jobs_show_lists_the_current_steps_of_running_items(tmp_path: Path) -> None:
    app, job_id = _job_with_reports(tmp_path / "data")
    app.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(tmp_path / "data"), COLUMNS="160")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "batchyard.cli.main", *args], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = cli("jobs", "show", job_id)
    assert "file-1  17 · reading the header" in shown
    assert "file-0  250/1,000 (25%) · importing sheet 2" in shown
    assert shown.index("file-1") < shown.index("file-0")  # most recent first
    assert "8%" in shown  # 0.25 of one item out of 3

    as_json = json.loads(cli("jobs", "show", job_id, "--json"))
    assert as_json["running_progress"] == 0.25 and as_json["percent"] == 8.33
    assert [(c["key"], c["message"]) for c in as_json["current"]] == [
        ("file-1", "reading the header"),
        ("file-0", "importing sheet 2"),
    ]


def test_the_progress_bar_counts_partial_progress_and_shows_the_current_step(tmp_path: Path) -> None:
    app, job_id = _job_with_reports(tmp_path / "data")
    try:
        job = JobOut.of(app.service.get(job_id))
    finally:
        app.close()
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    with JobProgress(console) as bar:
        bar.show(job)
        assert bar.task is not None
        assert bar.progress.tasks[0].completed == 0.25
    assert "reading the header" in out.getvalue()
