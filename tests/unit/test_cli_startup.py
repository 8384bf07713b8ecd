"""The CLI starts fast because each command imports only what it uses (issue: start-up time).

Not a timing test (the machines are shared and noisy; ``bench/README.md`` has the measured times): each case runs
the real entry point in a fresh interpreter and checks which heavy packages it loaded. A module-level import
added to a CLI module for convenience makes one of these fail, with the import chain to look at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a CLI start must not pay for unless the command needs it.
WEB = ("fastapi", "starlette", "uvicorn", "fastapi_offline", "multipart", "python_multipart")
DATABASE = ("sqlalchemy", "alembic", "psycopg", "batchyard.store", "batchyard.app")
HTTP_CLIENT = ("httpx", "batchyard.client")
OUTBOUND = ("aiohttp",)
SETTINGS = ("pydantic_settings",)

_PROBE = """
import json, sys
sys.argv = ["batchyard", *json.loads(sys.argv[1])]
from batchyard.cli.main import main
try:
    main()
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(sys.modules)))
"""


def loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules (and their top-level packages) loaded by ``batchyard ARGS`` in a fresh interpreter (with only
    the BATCHYARD_* variables in ``env``)."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("BATCHYARD_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **(env or {})},
    )
    last_line = done.stdout.strip().splitlines()[-1]
    modules: set[str] = set(json.loads(last_line))
    return modules | {name.split(".")[0] for name in modules}


def unexpected(modules: set[str], *groups: tuple[str, ...]) -> list[str]:
    return sorted(name for group in groups for name in group if name in modules)


def test_importing_the_cli_loads_no_web_database_or_http_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, batchyard.cli.main; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(json.loads(done.stdout))
    assert unexpected(modules, WEB, DATABASE, HTTP_CLIENT, OUTBOUND, SETTINGS, ("pydantic", "batchyard.wire")) == []


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["jobs", "--help"], ["submit", "--help"]])
def test_version_and_help_load_nothing_heavy(args: list[str]) -> None:
    assert unexpected(loaded_by(*args), WEB, DATABASE, HTTP_CLIENT, OUTBOUND, SETTINGS) == []


def test_a_local_jobs_list_needs_the_database_but_no_web_or_http_stack(tmp_path: Path) -> None:
    modules = loaded_by("jobs", "list", "--data-dir", str(tmp_path))
    assert "sqlalchemy" in modules  # it did read the database: the probe ran the command
    assert unexpected(modules, WEB, HTTP_CLIENT, OUTBOUND) == []


def test_a_remote_jobs_list_needs_the_http_client_but_no_database_or_web_stack() -> None:
    modules = loaded_by("jobs", "list", "--url", "http://127.0.0.1:9", "--key", "by_nothing")
    assert "httpx" in modules  # it did try the server
    assert unexpected(modules, WEB, DATABASE, OUTBOUND, SETTINGS) == []


# What ``jobs list``/``jobs show`` on an existing SQLite database need: sqlite3, typer and rich. Not the app, its
# settings (pydantic-settings), SQLAlchemy, Alembic or pydantic (typer's own coercion included: cli/coercion.py).
APP = ("batchyard.app", "batchyard.store.engine", "batchyard.settings", "batchyard.wire", "pydantic")


@pytest.fixture(scope="module")
def sqlite_data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data dir whose database is at the newest migration, with one job; (the dir, the job's id)."""
    from batchyard import Batchyard

    data_dir = tmp_path_factory.mktemp("startup")
    app = Batchyard(data_dir=data_dir, demo_handlers=True)
    try:
        return data_dir, app.submit("echo", [{"n": 1}]).id
    finally:
        app.close()


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["jobs", "list", "--json", "--status", "active", "-n", "5", "-q", "job_0"],
        ["jobs", "show", "JOB"],
        ["jobs", "show", "JOB", "--json"],
    ],
)
def test_local_jobs_list_and_show_on_sqlite_load_no_app_database_layer_or_pydantic(
    sqlite_data_dir: tuple[Path, str], args: list[str]
) -> None:
    data_dir, job_id = sqlite_data_dir
    args = [job_id if a == "JOB" else a for a in args]

    from_env = loaded_by(*args, env={"BATCHYARD_DATA_DIR": str(data_dir)})
    from_flag = loaded_by(*args, "--data-dir", str(data_dir))

    for modules in (from_env, from_flag):
        assert "batchyard.store.sqlite_reads" in modules  # it did read the database: the probe ran the command
        assert unexpected(modules, WEB, DATABASE[:2], HTTP_CLIENT, OUTBOUND, SETTINGS, APP) == []


def test_jobs_list_takes_the_full_path_when_another_setting_is_set(sqlite_data_dir: tuple[Path, str]) -> None:
    data_dir, _ = sqlite_data_dir
    modules = loaded_by("jobs", "list", env={"BATCHYARD_DATA_DIR": str(data_dir), "BATCHYARD_LEASE_SECONDS": "9"})
    assert "pydantic_settings" in modules and "sqlalchemy" in modules  # validated and read as always
