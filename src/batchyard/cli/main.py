"""The ``batchyard`` command: global options and the command tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchyard import __version__
from batchyard.cli.common import ReportingGroup, add_global_options, out, remember_globals
from batchyard.cli.jobs import jobs_app
from batchyard.cli.keys import keys_app
from batchyard.cli.mock import mock_upstream
from batchyard.cli.prune import prune
from batchyard.cli.quotas import quotas_app
from batchyard.cli.run import run
from batchyard.cli.serve import serve
from batchyard.cli.submit import submit
from batchyard.cli.webhooks import webhooks_app
from batchyard.cli.worker import db_app, worker

app = typer.Typer(
    name="batchyard",
    cls=ReportingGroup,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Batchyard: submit batches of items, watch them finish, download the results.

[bold]Try it[/]

  [cyan]batchyard submit items.jsonl --handler echo --wait[/]

  [cyan]batchyard jobs list[/]

  [cyan]batchyard serve[/]                    [dim]# API, dashboard and workers on http://127.0.0.1:8000[/]

With [cyan]--url[/] and [cyan]--key[/] (BATCHYARD_URL, BATCHYARD_API_KEY), [cyan]submit[/] and [cyan]jobs[/] work
on a server.

Settings come from BATCHYARD_* environment variables; the flags below override them.""",
)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"batchyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="BATCHYARD_DATA_DIR",
            metavar="DIR",
            file_okay=False,
            show_default=False,
            help="Where the SQLite database, uploads and result files live. Default: ~/.batchyard",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="BATCHYARD_DATABASE_URL",
            metavar="URL",
            show_default=False,
            help="Database URL, e.g. postgresql://user:pass@host/db. Default: SQLite in the data dir.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", metavar="", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    remember_globals(ctx, data_dir, database_url)


app.command()(serve)
app.command(no_args_is_help=True)(submit)
app.command()(worker)
app.command(no_args_is_help=True)(run)
app.command("mock-upstream")(mock_upstream)
app.command()(prune)
app.add_typer(jobs_app)
app.add_typer(keys_app)
app.add_typer(quotas_app)
app.add_typer(webhooks_app)
app.add_typer(db_app)
add_global_options(app)  # --data-dir and --db after any command's name too


def main() -> None:
    app(prog_name="batchyard")


if __name__ == "__main__":
    main()
