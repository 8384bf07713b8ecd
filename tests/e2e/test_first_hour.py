"""A newcomer's first hour (issue 6): what the real ``batchyard`` command does with ``--app``, demo handlers,
standard input, ``--json`` errors and the small things around them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchyard import Batchyard
from batchyard.handlers import BUILTIN_HANDLERS

from ..waits import wait_until
from .helpers import assert_clean_error
from .test_cli import Cli
from .test_serve import CLI, ServerProcess, cli_env, running_server

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
    builtin = sorted(BUILTIN_HANDLERS)  # openai and http: not demos, they serve production work
    assert Batchyard().registry.names() == builtin
    assert Batchyard(builtin_handlers=False).registry.names() == []
    assert Batchyard(demo_handlers=True, builtin_handlers=False).registry.names() == ["echo", "flaky", "sleep"]


def test_a_worker_with_app_offers_only_its_handlers(cli: Cli, tmp_path: Path) -> None:
    write_app(tmp_path, "userjobs")

    # Its own handlers and the built-in http (openai too once an upstream is set), never the demos unasked.
    assert "handlers http, shout ·" in worker_banner(cli, "--app", "userjobs:app")
    assert "handlers echo, flaky, http, shout, sleep ·" in worker_banner(cli, "--app", "userjobs:app", "--demo")
    assert "handlers echo, flaky, http, sleep ·" in worker_banner(cli)  # no --app: the demo handlers, to try things
    assert "handlers http, openai, shout ·" in worker_banner(
        cli, "--app", "userjobs:app", "--upstream", "http://127.0.0.1:9/v1"
    )


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

    assert "handlers http, shout ·" in worker_banner(cli, "--app", "renamed")


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
        wait_until(
            lambda: cli.json("jobs", "show", submitted["id"])["files_written_at"] is not None,
            what="the job to finish",
            timeout=60,
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


# -- item 8: CSV on standard input ------------------------------------------------------------------------------

CSV = "name,n\nann,1\nbob,2\ncat,3\ndan,4\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server")
    with running_server(root / "data", root, "--port", "0") as process:
        yield process


def remote_run(
    server: ServerProcess, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = cli_env(cwd / "local-data", BATCHYARD_URL=server.url, BATCHYARD_API_KEY=server.create_key("alice"))
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_csv_on_standard_input_is_sniffed_and_format_overrides(cli: Cli) -> None:
    job = cli.json("submit", "-", "-H", "echo", "--wait", stdin=CSV)

    assert job["counts"]["succeeded"] == 4
    done = cli.run("submit", "-", "-H", "echo", "--format", "jsonl", stdin=CSV)
    assert_clean_error(done, 2, "invalid_json")
    as_csv = cli.json("submit", "-", "-H", "echo", "--format", "csv", "--wait", stdin='{"a": 1}\n{"a": 2}\n')
    assert as_csv["counts"]["total"] == 1  # the first line is the header row of a one-column CSV


def test_csv_on_standard_input_is_sniffed_by_the_server_too(server: ServerProcess, tmp_path: Path) -> None:
    done = remote_run(server, tmp_path, "submit", "-", "-H", "echo", "--wait", "--json", stdin=CSV)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 4
    forced = remote_run(server, tmp_path, "submit", "-", "-H", "echo", "--format", "jsonl", stdin=CSV)
    assert_clean_error(forced, 2, "invalid_json")


# -- item 9: --json covers errors -------------------------------------------------------------------------------

BAD_LINES = '{"custom_id": "a"}\n{oops\n[1]\n{"custom_id": "a"}\n'


def json_error(done: subprocess.CompletedProcess[str], code: int) -> Any:
    """Failed with ``code``, the error as JSON alone on stdout, the same words for people on stderr."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    assert "Error" in done.stderr
    error = json.loads(done.stdout)["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    return error


def test_json_prints_input_problems_with_their_lines_and_codes(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(BAD_LINES)

    error = json_error(cli.run("submit", str(bad), "-H", "echo", "--json"), 2)

    assert error["code"] == "invalid_input"
    assert error["total"] == 3
    assert [(p["line"], p["code"]) for p in error["problems"]] == [
        (2, "invalid_json"),
        (3, "not_an_object"),
        (4, "duplicate_key"),
    ]
    assert cli.json("jobs", "list") == []


def test_json_prints_the_servers_input_problems_the_same_way(server: ServerProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(BAD_LINES)

    error = json_error(remote_run(server, tmp_path, "submit", str(bad), "-H", "echo", "--json"), 2)

    assert error["code"] == "invalid_input"
    assert [(p["line"], p["code"]) for p in error["problems"]] == [
        (2, "invalid_json"),
        (3, "not_an_object"),
        (4, "duplicate_key"),
    ]


def test_every_json_command_prints_its_errors_as_json(cli: Cli, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"n": 1}\n')

    assert json_error(cli.run("submit", str(items), "-H", "nope", "--json"), 1)["code"] == "unknown_handler"
    assert json_error(cli.run("submit", str(items), "-H", "echo", "--param", "x", "--json"), 2)["code"] == (
        "invalid_usage"
    )
    assert json_error(cli.run("jobs", "show", "job_missing", "--json"), 1)["code"] == "not_found"
    assert json_error(cli.run("jobs", "cancel", "job_missing", "--json"), 1)["code"] == "not_found"
    assert json_error(cli.run("keys", "list", "--app", "nomodule", "--json"), 1)["type"] == "ConfigError"
    unreachable = cli.run("jobs", "list", "--url", "http://127.0.0.1:1", "--key", "k", "--json")
    assert json_error(unreachable, 1)["code"] == "server_unreachable"


# -- item 16: small things --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_db_upgrade_says_whether_it_created_the_schema(cli: Cli) -> None:
    created = cli.run("db", "upgrade")
    again = cli.run("db", "upgrade")

    assert created.returncode == 0 and again.returncode == 0, created.stderr + again.stderr
    assert "had no schema: created it" in created.stdout
    assert "nothing to do" in again.stdout and "created" not in again.stdout


def test_build_output_is_ignored_by_git(tmp_path: Path) -> None:
    """Checked by git itself, in a fresh repository holding the project's .gitignore (a source tree may be none)."""
    (tmp_path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    paths = ["build/lib/batchyard/app.py", "dist/batchyard-0.1.0.tar.gz"]

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert git("init", "-q").returncode == 0
    done = git("check-ignore", "--no-index", *paths, "src/batchyard/app.py")

    assert done.stdout.split() == paths, done.stderr


def test_submit_options_are_typed_keywords() -> None:
    import inspect
    import typing

    signature = inspect.signature(Batchyard.submit)
    hints = typing.get_type_hints(Batchyard.submit)
    for name in ("description", "tags", "metadata", "params", "priority", "max_attempts", "timeout_seconds"):
        assert signature.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert hints[name] is not typing.Any
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def test_the_readmes_client_example_runs_against_a_server(server: ServerProcess, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    [code] = [block for block in readme.split("```python\n")[1:] if "from batchyard.client import Client" in block]
    script = tmp_path / "client_example.py"
    script.write_text(code.split("```")[0].replace("http://127.0.0.1:8000", server.url))
    env = cli_env(tmp_path / "unused", BATCHYARD_API_KEY=server.create_key("carol"))

    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "completed 2\n"
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2


def test_jobs_delete_without_an_answer_says_to_pass_yes(cli: Cli, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"n": 1}\n')
    job = cli.json("submit", str(items), "-H", "echo", "--wait")

    done = cli.run("jobs", "delete", job["id"], stdin="")  # standard input ends at once: a script, CI

    assert done.returncode == 1, done.stderr
    assert "was not deleted" in done.stderr and "pass --yes" in done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
    assert cli.json("jobs", "show", job["id"])["id"] == job["id"]
