"""A newcomer's first hour (issue 6): what the real ``batchyard`` command does with ``--app``, demo handlers,
standard input, ``--json`` errors and the small things around them."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

from batchyard import Batchyard

from .helpers import assert_clean_error
from .test_cli import Cli, wait_for

USER_APP = """
from batchyard import Batchyard

{name} = Batchyard()


@{name}.handler("shout")
def shout(item, ctx):
    return {{"text": item["text"].upper()}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", tmp_path)


def write_app(directory: Path, module: str, name: str = "app") -> None:
    (directory / f"{module}.py").write_text(textwrap.dedent(USER_APP.format(name=name)))


def worker_banner(cli: Cli, *args: str) -> str:
    """Start ``batchyard worker ARGS`` and return its first line (the banner); the worker is killed after it."""
    process = cli.popen("worker", *args)
    try:
        assert process.stdout is not None
        return process.stdout.readline()
    finally:
        process.kill()
        process.communicate(timeout=10)


# -- item 11: demo handlers are opt-in --------------------------------------------------------------------------


def test_an_app_offers_no_demo_handlers_unless_asked() -> None:
    assert Batchyard().registry.names() == []
    assert Batchyard(demo_handlers=True).registry.names() == ["echo", "flaky", "sleep"]


def test_a_worker_with_app_offers_only_its_handlers(cli: Cli, tmp_path: Path) -> None:
    write_app(tmp_path, "userjobs")

    assert "handlers shout ·" in worker_banner(cli, "--app", "userjobs:app")
    assert "handlers echo, flaky, shout, sleep ·" in worker_banner(cli, "--app", "userjobs:app", "--demo")
    assert "handlers echo, flaky, sleep ·" in worker_banner(cli)  # no --app: the demo handlers, to try things


def test_submitting_to_a_demo_handler_of_a_user_app_needs_demo(cli: Cli, tmp_path: Path) -> None:
    write_app(tmp_path, "userjobs")
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "hi"}\n')

    assert_clean_error(
        cli.run("submit", str(items), "-H", "flaky", "--app", "userjobs:app"), 1, "no handler named 'flaky'"
    )
    job = cli.json("submit", str(items), "-H", "echo", "--app", "userjobs:app", "--demo", "--wait")
    assert job["counts"]["succeeded"] == 1


def test_a_worker_for_an_app_without_handlers_says_so(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "emptyjobs.py").write_text("from batchyard import Batchyard\n\napp = Batchyard()\n")

    assert_clean_error(cli.run("worker", "--app", "emptyjobs"), 1, "registers no handlers", "--demo")


# -- item 14: --app MODULE finds the app ------------------------------------------------------------------------


def test_app_module_alone_finds_its_app_attribute(cli: Cli, tmp_path: Path) -> None:
    write_app(tmp_path, "userjobs")
    items = tmp_path / "items.jsonl"
    items.write_text('{"custom_id": "a", "text": "hello"}\n')

    job = cli.json("submit", str(items), "-H", "shout", "--app", "userjobs", "--wait")

    assert job["counts"]["succeeded"] == 1


def test_app_module_alone_finds_its_only_app_by_any_name(cli: Cli, tmp_path: Path) -> None:
    write_app(tmp_path, "renamed", name="batches")

    assert "handlers shout ·" in worker_banner(cli, "--app", "renamed")


def test_app_module_without_an_app_says_what_it_looked_for(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "noapp.py").write_text("app = 'not an app'\n")
    (tmp_path / "twoapps.py").write_text(
        "from batchyard import Batchyard\n\nfirst = Batchyard()\nsecond = Batchyard()\n"
    )

    assert_clean_error(
        cli.run("jobs", "list", "--app", "noapp"),
        1,
        "found no Batchyard app in module 'noapp'",
        "an attribute 'app'",
        "any Batchyard instance",
        "MODULE:ATTR",
    )
    assert_clean_error(cli.run("jobs", "list", "--app", "twoapps"), 1, "twoapps:first or twoapps:second")
    assert_clean_error(cli.run("jobs", "list", "--app", "userjobs:"), 1, "expected MODULE or MODULE:ATTR")


# -- item 12: failures are logged -------------------------------------------------------------------------------


def test_a_worker_logs_each_failed_item_without_its_payload(cli: Cli, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(f'{{"custom_id": "row-{i}", "password": "hunter2"}}\n' for i in range(12)))
    submitted = cli.json("submit", str(items), "-H", "flaky", "--param", "failure_rate=1", "--param", "permanent=true")
    process = cli.popen("worker", "--handlers", "flaky")
    try:
        wait_for(
            lambda: cli.json("jobs", "show", submitted["id"])["files_written_at"] is not None, 60, "the job to finish"
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)

    job_id = submitted["id"]
    failed_lines = [line for line in stderr.splitlines() if "failed: ItemError (flaky)" in line]
    assert len(failed_lines) == 10, stderr  # the first ten, one by one
    assert all("WARNING" in line and job_id in line for line in failed_lines)
    assert {line.split("'")[1] for line in failed_lines} <= {f"row-{i}" for i in range(12)}  # the item keys
    assert f"job {job_id}: 10 items failed; further failures" in stderr
    assert f"job {job_id}: 2 more items failed" in stderr  # told when the worker stops at the latest
    assert "hunter2" not in stderr
    assert "wrote result files" not in stderr  # DEBUG now
