"""Plain option values coerced without pydantic (cli/coercion.py) come out exactly as typer's own coercion has
them, errors included; and the quick reads' settings (services/quick_reads.py) are the app's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from sqlalchemy.engine import make_url

from batchyard.cli import coercion
from batchyard.cli.common import GlobalOptions
from batchyard.cli.main import app as cli_app
from batchyard.data.results import RESULT_FILE_NAMES
from batchyard.services import quick_reads
from batchyard.settings import DEFAULT_DATA_DIR, Settings

typer_coercion = pytest.importorskip("typer._coercion", reason="this typer coerces without pydantic anyway")

probe = typer.Typer()


@probe.command()
def command(
    text: Annotated[str | None, typer.Option("--text")] = None,
    flag: Annotated[bool, typer.Option("--flag")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    folder: Annotated[Path | None, typer.Option("--folder", file_okay=False)] = None,
    words: Annotated[list[str] | None, typer.Option("--word")] = None,
) -> None:
    """A command with one option of each plain kind."""


def _params() -> dict[str, Any]:
    command = typer.main.get_command(probe)
    return {p.name: p for p in command.params}


def _outcome(coerce: Any, value: Any, param: Any) -> tuple[str, Any]:
    try:
        return "value", coerce(value, param=param, ctx=None)
    except typer.BadParameter as exc:
        return "error", exc.format_message()


def _values(tmp_path: Path) -> dict[str, list[Any]]:
    (tmp_path / "a-file").write_text("x")
    return {
        "text": [None, "", "plain", "  blanks  ", "ünïcode", "--looks-like-a-flag"],
        "flag": [None, True, False],
        "limit": [
            20,
            1,
            1000,
            "1",
            "20",
            "1000",
            "0",
            "1001",
            "-5",
            "+5",
            " 7",
            "1_0",
            "x",
            "3.0",
            "99999999999999999999",
        ],
        "folder": [None, str(tmp_path), str(tmp_path / "missing"), str(tmp_path / "a-file"), tmp_path, "relative/dir"],
        "words": [None, (), ("a",), ("a", "b,c"), ["x"]],
    }


@pytest.mark.parametrize("name", ["text", "flag", "limit", "folder", "words"])
def test_a_plain_value_comes_out_as_typer_has_it_and_a_bad_one_with_typers_error(name: str, tmp_path: Path) -> None:
    param = _params()[name]
    kind = coercion.plain_kind(param)
    assert kind is not None
    plain = coercion.PlainCoercion(param, kind)
    typers = typer_coercion.build_runtime_param(param.type_descriptor)

    for value in _values(tmp_path)[name]:
        ours, theirs = _outcome(plain.coerce, value, param), _outcome(typers.coerce, value, param)
        assert ours == theirs, value
        assert type(ours[1]) is type(theirs[1]), value


def test_other_types_stay_with_typer() -> None:
    command = typer.main.get_command(cli_app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    kinds = {p.name: coercion.plain_kind(p) for p in serve.params}
    assert kinds["log_level"] is None  # a choice (an Enum)
    assert kinds["port"] == "int"


# -- the quick reads' settings are the app's ---------------------------------------------------------------------


def test_the_copied_defaults_are_the_apps() -> None:
    assert quick_reads.DEFAULT_DATA_DIR == DEFAULT_DATA_DIR
    assert Settings.model_fields["worker_stale_seconds"].default == quick_reads.DEFAULT_WORKER_STALE_SECONDS
    assert quick_reads.RESULT_FILE_NAMES == RESULT_FILE_NAMES


@pytest.mark.parametrize("data_dir", [None, "data", "~/by-data", "/abs/data"])
@pytest.mark.parametrize(
    "database_url", [None, "", "sqlite:////abs/other.db", "sqlite:///rel/other.db", "postgresql://u@h/db"]
)
def test_the_quick_reads_find_the_database_and_files_the_app_would(
    data_dir: str | None, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI hands both paths the same options (GlobalOptions: flags, else the variables typer read); with
    those the app's Settings and the quick reads must agree on the database file and the data dir."""
    for name in ("BATCHYARD_DATA_DIR", "BATCHYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    options = GlobalOptions(data_dir=None if data_dir is None else Path(data_dir), database_url=database_url)
    settings = Settings(**options.overrides())  # as open_app builds the app's

    local = quick_reads.local_sqlite(options.data_dir, options.database_url, environ={})

    if database_url and database_url.startswith("postgresql"):
        assert local is None
        return
    assert local is not None
    assert str(local.database) == make_url(settings.effective_database_url).database
    assert local.data_dir == settings.data_dir
