"""What every command shares: the consoles, global options, loading the app, JSON output and error reporting."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from batchyard.errors import (
    ApiError,
    BatchyardError,
    InputInvalid,
    ServerUnreachable,
    StoreUnavailable,
    WorkerCrashed,
)

if TYPE_CHECKING:  # each is imported by the command that needs it: a CLI start loads no database or HTTP stack
    from sqlalchemy.engine import URL

    from batchyard.app import Batchyard
    from batchyard.client import Client

# click's UsageError, whichever click Typer uses (newer Typers bring their own copy of it).
UsageError: type[typer.BadParameter] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_ERROR = 1
EXIT_INPUT_INVALID = 2
PROBLEMS_SHOWN = 20

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE[:ATTR]",
        help="Your Batchyard instance, e.g. [bold]mypkg.jobs:app[/], or [bold]mypkg.jobs[/] for its [bold]app[/] "
        "(imported from the current directory), so its handlers and settings are used. Default: the demo handlers "
        "(echo, sleep, flaky).",
    ),
]
UpstreamOption = Annotated[
    str | None,
    typer.Option(
        "--upstream",
        metavar="URL",
        show_default=False,
        help="Where the [bold]openai[/] handler sends requests: an OpenAI-compatible base URL ending in /v1 "
        "(vLLM, SGLang, Ollama, a gateway), e.g. [bold]http://127.0.0.1:8001/v1[/]; its key from "
        "BATCHYARD_UPSTREAM_API_KEY. Env: BATCHYARD_UPSTREAM_URL. Per-model routes: BATCHYARD_UPSTREAMS_FILE.",
    ),
]


def use_upstream(app: Batchyard, url: str | None) -> None:
    """``--upstream URL`` wins over BATCHYARD_UPSTREAM_URL (checked like it: a bad URL is a clear error)."""
    if url is not None:
        from batchyard.settings import Settings

        app.settings = Settings.model_validate({**app.settings.model_dump(), "upstream_url": url})


# Whether this command line asked for --json (then errors go to stdout as JSON too); set while parsing it.
_json_requested: ContextVar[bool] = ContextVar("batchyard_json_requested", default=False)


def _note_json(value: bool) -> bool:
    if value:
        _json_requested.set(True)
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        metavar="",
        callback=_note_json,
        is_eager=True,  # noted before any other option can fail to parse
        help='Print only JSON on stdout (for scripts), errors too: {"error": {"message", "type", "code", ...}}.',
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="BATCHYARD_URL",
        metavar="URL",
        show_default=False,
        help="Work against a Batchyard server (e.g. [bold]http://127.0.0.1:8000[/]) through its REST API instead of "
        "a local database; needs --key.",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="BATCHYARD_API_KEY",
        metavar="KEY",
        show_default=False,
        help="The API key for --url (create one on the server with [bold]batchyard keys create[/]). Prefer the "
        "environment variable: a flag shows up in your shell history.",
    ),
]
# Every command also takes the root's --data-dir/--db after its name ("batchyard jobs list --db URL"): see
# ``add_global_options``. The root's read the environment; these only the command line, and win over both.
CommandDataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        file_okay=False,
        show_default=False,
        rich_help_panel="Where the data is",
        help="Where the SQLite database, uploads and result files live (env BATCHYARD_DATA_DIR). Default: ~/.batchyard",
    ),
]
CommandDatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        show_default=False,
        rich_help_panel="Where the data is",
        help="Database URL, e.g. postgresql://user:pass@host/db (env BATCHYARD_DATABASE_URL). "
        "Default: SQLite in the data dir.",
    ),
]
_GLOBAL_PARAMS = ("global_data_dir", "global_database_url")
_CONTEXT_PARAM = "global_context"


@dataclass
class GlobalOptions:
    """The root options (``--data-dir``, ``--db``); ``explicit`` holds those given on the command line."""

    data_dir: Path | None = None
    database_url: str | None = None
    explicit: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_context(cls, ctx: typer.Context) -> GlobalOptions:
        root = ctx.find_root()
        if not isinstance(root.obj, cls):
            root.obj = cls()
        return root.obj

    def overrides(self) -> dict[str, Any]:
        values = {"data_dir": self.data_dir, "database_url": self.database_url}
        return {name: value for name, value in values.items() if value is not None}


def remember_globals(ctx: typer.Context, data_dir: Path | None, database_url: str | None) -> None:
    """Keep the root options for the commands; note which came from the command line rather than the env."""
    options = GlobalOptions(data_dir=data_dir, database_url=database_url)
    for name in ("data_dir", "database_url"):
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            options.explicit[name] = getattr(options, name)
    ctx.obj = options


def override_globals(ctx: typer.Context, data_dir: Path | None, database_url: str | None) -> None:
    """A command's own --data-dir/--db: they win over the root's and the environment."""
    options = GlobalOptions.from_context(ctx)
    if data_dir is not None:
        options.data_dir = options.explicit["data_dir"] = data_dir
    if database_url is not None:
        options.database_url = options.explicit["database_url"] = database_url


def add_global_options(app: typer.Typer) -> None:
    """Give every command of ``app`` (and of its sub-apps) the global ``--data-dir`` and ``--db``.

    Users type them where they think of them: ``batchyard worker --data-dir DIR``, ``batchyard submit FILE --db
    URL``, ``batchyard jobs list --db URL`` as well as ``batchyard --db URL jobs list``. Called once on the root
    app, after every command is registered, so no command can forget them.
    """
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = with_global_options(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_global_options(group.typer_instance)


def with_global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with two more options, ``--data-dir`` and ``--db``, applied as :func:`override_globals` does."""
    if getattr(command, "__batchyard_globals__", False):
        return command
    signature = inspect.signature(command, eval_str=True)
    context_param = next((p.name for p in signature.parameters.values() if p.annotation is typer.Context), None)
    added = [
        inspect.Parameter(
            _GLOBAL_PARAMS[0], inspect.Parameter.KEYWORD_ONLY, default=None, annotation=CommandDataDirOption
        ),
        inspect.Parameter(
            _GLOBAL_PARAMS[1], inspect.Parameter.KEYWORD_ONLY, default=None, annotation=CommandDatabaseOption
        ),
    ]
    if context_param is None:
        added.append(inspect.Parameter(_CONTEXT_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        data_dir, database_url = (kwargs.pop(name) for name in _GLOBAL_PARAMS)
        ctx = kwargs[context_param] if context_param else kwargs.pop(_CONTEXT_PARAM)
        override_globals(ctx, data_dir, database_url)
        return command(*args, **kwargs)

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *added]
    )
    # The annotations evaluated once, here: typer would evaluate each text annotation again (typing.get_type_hints
    # compiles one ForwardRef per option), for every command, on every start.
    run.__annotations__ = {p.name: p.annotation for p in [*signature.parameters.values(), *added]}
    if signature.return_annotation is not inspect.Signature.empty:
        run.__annotations__["return"] = signature.return_annotation
    run.__batchyard_globals__ = True  # type: ignore[attr-defined]
    return run


@contextlib.contextmanager
def open_app(ctx: typer.Context, app_ref: str | None, *, demo: bool = False) -> Iterator[Batchyard]:
    """The app a command works on: the user's (``--app``, plus the demo handlers with ``demo``) or a default one
    with the demo handlers; closed afterwards."""
    from batchyard.app import Batchyard
    from batchyard.cli.appref import load_user_app
    from batchyard.handlers.demo import register_demo_handlers
    from batchyard.settings import Settings

    options = GlobalOptions.from_context(ctx)
    if app_ref:
        app = load_user_app(app_ref)
        if demo:
            register_demo_handlers(app.registry)
        if options.explicit:  # flags beat whatever the user's module configured
            app.close()
            app.settings = Settings.model_validate({**app.settings.model_dump(), **options.explicit})
    else:
        app = Batchyard(Settings(**options.overrides()), demo_handlers=True)
    try:
        yield app
    finally:
        app.close()


def hint_command(ctx: typer.Context, app_ref: str | None, *words: str) -> str:
    """A follow-up command to suggest (as Rich markup), repeating the flags that found this job's database."""
    options = GlobalOptions.from_context(ctx)
    parts = ["batchyard"]
    if "data_dir" in options.explicit:
        parts += ["--data-dir", shlex.quote(str(options.explicit["data_dir"]))]
    url = options.explicit.get("database_url")
    parsed = make_url_or_none(url) if url else None
    if url and parsed is not None and parsed.password is None:  # never repeat a password on screen
        parts += ["--db", shlex.quote(url)]
    parts += words
    if app_ref:
        parts += ["--app", shlex.quote(app_ref)]
    return escape(" ".join(parts))


def make_url_or_none(url: str) -> URL | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:  # not a database error: the text is not a URL
        return None


def redact_url(url: str) -> str:
    """A database URL fit to print: any password replaced by ``***``."""
    parsed = make_url_or_none(url)
    return "<unparsable URL>" if parsed is None else parsed.render_as_string(hide_password=True)


# -- remote mode (--url/--key) --------------------------------------------------------------------------------


@contextlib.contextmanager
def open_client(url: str, key: str | None, app_ref: str | None = None) -> Iterator[Client]:
    """A client for ``--url``, authenticated with ``--key``; closed afterwards."""
    if app_ref:
        fail(
            "--app loads handlers into a local process; with --url the server's handlers are used",
            hint="drop --app, or drop --url (and BATCHYARD_URL) to work on the local database",
        )
    if not key:
        fail(
            f"--url {url} needs an API key: pass --key or set BATCHYARD_API_KEY",
            hint="create one where the server runs: batchyard keys create --owner NAME --role member",
        )
    from batchyard.client import Client

    with Client(url, key) as client:
        yield client


def remote_hint(ctx: typer.Context, *words: str) -> str:
    """A follow-up command (as Rich markup) for remote mode: repeats --url if it was typed, never the key."""
    parts = ["batchyard", *words]
    url_source = ctx.get_parameter_source("url")
    if url_source is not None and url_source.name == "COMMANDLINE":
        parts += ["--url", shlex.quote(str(ctx.params["url"]))]
    key_source = ctx.get_parameter_source("key")
    if key_source is not None and key_source.name == "COMMANDLINE":
        parts += ["--key", "KEY"]
    return escape(" ".join(parts))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_json_error(error: dict[str, Any]) -> None:
    """With ``--json``: the error as the API words it, ``{"error": {"message", "type", "param", "code", ...}}``."""
    if _json_requested.get():
        print_json({"error": error})


def fail(
    message: str, *, code: int = EXIT_ERROR, hint: str | None = None, error: dict[str, Any] | None = None
) -> NoReturn:
    """Print a one-line red error (and an optional hint) on stderr and exit; with ``--json`` also ``error`` (by
    default built from ``message``) as JSON on stdout."""
    if error is None:
        error = {"message": message, "type": "CommandError", "param": None, "code": "command_error"}
        if hint:
            error["hint"] = hint
    print_json_error(error)
    err.print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[dim]{escape(hint)}[/]")
    raise typer.Exit(code)


def print_input_problems(exc: InputInvalid) -> None:
    from rich import box
    from rich.table import Table

    print_json_error(exc.to_dict())
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("Line", justify="right", style="cyan", no_wrap=True)
    table.add_column("Code", style="magenta", no_wrap=True)
    table.add_column("Problem", overflow="fold")
    for problem in exc.problems[:PROBLEMS_SHOWN]:
        table.add_row(str(problem.line), problem.code, escape(problem.message))
    noun = "problem" if exc.total == 1 else "problems"
    err.print(
        f"[bold red]Error:[/] {escape(exc.source)} has {exc.total:,} {noun}; nothing was submitted.", soft_wrap=True
    )
    err.print(table)
    if exc.total > PROBLEMS_SHOWN:
        err.print(f"[dim]... and {exc.total - PROBLEMS_SHOWN:,} more[/]")


def report_error(exc: Exception) -> NoReturn:
    """Turn an expected error into a message and an exit code, never a traceback."""
    if isinstance(exc, ApiError):
        report_api_error(exc)
    if isinstance(exc, InputInvalid):
        print_input_problems(exc)
        raise typer.Exit(EXIT_INPUT_INVALID)
    if isinstance(exc, ServerUnreachable):
        fail(
            exc.message,
            hint="is 'batchyard serve' running there? Check --url / BATCHYARD_URL",
            error=exc.to_dict(),
        )
    if isinstance(exc, WorkerCrashed):
        fail(
            exc.message,
            error=exc.to_dict(),
            hint="the traceback is logged above; its items return to the queue. Run workers under "
            "a supervisor (systemd, Kubernetes, docker --restart) so a new one starts",
        )
    if isinstance(exc, StoreUnavailable):
        fail(exc.message, hint="check --db / BATCHYARD_DATABASE_URL and that the server is up", error=exc.to_dict())
    if isinstance(exc, BatchyardError):
        fail(exc.message, error=exc.to_dict())
    if _is_validation_error(exc):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())  # type: ignore[attr-defined]
        fail(f"invalid settings: {problems}", hint="check the BATCHYARD_* environment variables and flags")
    raise exc


def _is_validation_error(exc: BaseException) -> bool:
    """Whether ``exc`` is pydantic's ValidationError (invalid settings), without importing pydantic to ask: if it
    was never imported, nothing could have raised one."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def report_api_error(exc: ApiError, source: str = "input") -> NoReturn:
    """An error answer from the server: its problem list (exit 2) for rejected input, else one red line."""
    invalid = exc.input_invalid(source)
    if invalid is not None:
        print_input_problems(invalid)
        raise typer.Exit(EXIT_INPUT_INVALID)
    if exc.status == 401:
        fail(
            exc.message,
            error=exc.to_dict(),
            hint="check --key / BATCHYARD_API_KEY (keys are listed with 'batchyard keys list' where the server runs)",
        )
    fail(exc.message, error=exc.to_dict())


class ReportingGroup(TyperGroup):
    """The root command group: Batchyard's own errors become a clear message and exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from batchyard.cli import coercion

        coercion.install()  # before any option's value is processed: see cli/coercion.py
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        json_token = _json_requested.set(False)
        try:
            return super().invoke(ctx)
        except BatchyardError as exc:
            report_error(exc)
        except UsageError as exc:  # a bad option or argument: click words it on stderr, as JSON here too
            param = getattr(getattr(exc, "param", None), "name", None) or getattr(exc, "param_hint", None)
            print_json_error(
                {
                    "message": exc.format_message(),
                    "type": "UsageError",
                    "param": param if isinstance(param, str) else None,
                    "code": "invalid_usage",
                }
            )
            raise
        except Exception as exc:
            if _is_validation_error(exc):  # invalid settings (pydantic): a message, not a traceback
                report_error(exc)
            raise
        finally:
            _json_requested.reset(json_token)
