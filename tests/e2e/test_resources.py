"""Worker resources in a real ``batchyard worker`` process: made once, shared by its items, cleaned up on SIGTERM
after the items in flight finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchyard import Batchyard

from ..waits import wait_until

USER_APP = textwrap.dedent(
    """
    import asyncio
    import os
    import threading
    from pathlib import Path

    from batchyard import Batchyard

    app = Batchyard()
    NOTES = Path(os.environ["RESOURCE_NOTES"])


    def note(line):
        with NOTES.open("a") as out:
            out.write(line + "\\n")


    @app.resource("browser")
    async def browser():
        note(f"setup {os.getpid()}")
        state = {"pid": os.getpid(), "uses": 0, "lock": threading.Lock()}
        await asyncio.sleep(0.2)
        yield state
        note(f"teardown {os.getpid()} uses={state['uses']}")


    @app.handler("render", concurrency=16)
    async def render(item, ctx):
        state = ctx.resources["browser"]
        with state["lock"]:
            state["uses"] += 1
        await asyncio.sleep(item.get("ms", 1) / 1000)
        return {"pid": state["pid"]}


    @app.handler("render_sync", concurrency=4)
    def render_sync(item, ctx):
        state = ctx.resources["browser"]
        with state["lock"]:
            state["uses"] += 1
        return {"pid": state["pid"]}
    """
)


@pytest.fixture
def user_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    (tmp_path / "renderapp.py").write_text(USER_APP)
    notes = tmp_path / "notes.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(tmp_path / "data"), RESOURCE_NOTES=str(notes), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "batchyard.cli.main", "worker", "--app", "renderapp:app", "--concurrency", "32"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process, notes
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=10)


def test_a_worker_makes_its_resource_once_for_100_items_and_cleans_it_up_on_sigterm(
    tmp_path: Path, user_worker: tuple[subprocess.Popen[str], Path]
) -> None:
    process, notes = user_worker
    app = Batchyard(data_dir=tmp_path / "data")
    try:
        wait_until(
            lambda: process.poll() is None and app.service.has_live_worker_for("render"),
            timeout=60,
            what="the worker to start",
        )
        jobs = [
            app.submit("render", [{"n": i} for i in range(70)]),
            app.submit("render_sync", [{"n": i} for i in range(30)]),
        ]
        wait_until(
            lambda: all(app.service.get(job.id).finished for job in jobs), timeout=60, what="both jobs to finish"
        )
        assert [app.service.get(job.id).job.succeeded for job in jobs] == [70, 30]
        assert notes.read_text().splitlines() == [f"setup {process.pid}"], "100 items, one setup"
        assert {r.result["pid"] for job in jobs for r in job.results()} == {process.pid}

        slow = app.submit("render", [{"n": i, "ms": 1500} for i in range(4)])
        wait_until(lambda: app.service.get(slow.id).job.running == 4, timeout=30, what="4 items in flight")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
        # The items in flight finished first (none was handed back), then the resource was cleaned up.
        assert app.service.get(slow.id).job.succeeded == 4
        assert notes.read_text().splitlines() == [f"setup {process.pid}", f"teardown {process.pid} uses=104"]
    finally:
        app.close()
