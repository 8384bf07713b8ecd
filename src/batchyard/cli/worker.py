"""``batchyard worker`` (process items until stopped) and ``batchyard db`` (the schema)."""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

from batchyard.cli.appref import DemoOption
from batchyard.cli.common import AppOption, UpstreamOption, err, fail, open_app, out, redact_url, use_upstream
from batchyard.core import humanize


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        metavar="LEVEL",
        case_sensitive=False,
        help="How much Batchyard logs on stderr: debug, info, warning, error.",
    ),
]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar="BATCHYARD_LOG_FORMAT",
        metavar="FORMAT",
        case_sensitive=False,
        help="text (for people), or json: one JSON object per line with time, level, logger, message, and job_id, "
        "item_key, item_seq where known (for log shippers). Env: BATCHYARD_LOG_FORMAT.",
    ),
]


def configure_logging(level: LogLevel, log_format: LogFormat = LogFormat.text) -> None:
    """Batchyard's own logs at ``level`` on stderr; other libraries' (alembic, ...) only from warnings up."""
    if log_format is LogFormat.json:
        from batchyard.logs import json_handler

        handler = json_handler(sys.stderr)
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=err, show_path=False, rich_tracebacks=True, markup=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    logging.getLogger("batchyard").setLevel(level.value.upper())


def worker(
    ctx: typer.Context,
    app: AppOption = None,
    demo: DemoOption = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            metavar="N",
            help="Items in flight in this process, all handlers together. Default: BATCHYARD_WORKER_CONCURRENCY (256).",
        ),
    ] = None,
    handlers: Annotated[
        str | None,
        typer.Option(
            "--handlers", metavar="NAME,NAME", help="Only run these handlers (comma-separated). Default: all."
        ),
    ] = None,
    upstream: UpstreamOption = None,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.text,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="BATCHYARD_WORKER_METRICS_PORT",
            min=1,
            max=65535,
            metavar="PORT",
            help="Serve this worker's own metrics (items processed, claim and flush latency) for Prometheus at "
            "http://HOST:PORT/metrics. Queue gauges come from a server's /metrics. "
            "Env: BATCHYARD_WORKER_METRICS_PORT.",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            envvar="BATCHYARD_WORKER_METRICS_HOST",
            metavar="ADDRESS",
            help="Address for --metrics-port (no key is asked there; 0.0.0.0 opens it to the network). "
            "Env: BATCHYARD_WORKER_METRICS_HOST.",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run a worker: claim items of every job whose handler it knows and process them, until stopped.

    Start as many as you like, on as many machines as share the database (PostgreSQL for more than one
    machine). Ctrl-C or SIGTERM stops it gracefully: it claims nothing more and items in flight get
    BATCHYARD_SHUTDOWN_GRACE_SECONDS to finish; unfinished ones go back to the queue. Its maintenance also
    deletes finished jobs past BATCHYARD_JOB_RETENTION_DAYS when that is set (see [cyan]batchyard prune[/]).

    [bold]Examples[/]

      [cyan]batchyard worker[/]                                   [dim]# the demo handlers echo, sleep, flaky[/]

      [cyan]batchyard worker --app mypkg.jobs:app --concurrency 200[/]

      [cyan]batchyard worker --upstream http://127.0.0.1:8001/v1[/]        [dim]# runs OpenAI batches[/]

      [cyan]batchyard --db postgresql://batch@db/batch worker --app mypkg.jobs:app --handlers thumbnail[/]
    """
    configure_logging(log_level, log_format)
    with open_app(ctx, app, demo=demo) as by:
        use_upstream(by, upstream)
        from batchyard.handlers import BUILTIN_HANDLERS, served_handlers

        names = (
            [n.strip() for n in handlers.split(",") if n.strip()]
            if handlers
            else served_handlers(by.registry, by.settings)
        )
        if not handlers and not by.settings.has_upstream and set(names) <= set(BUILTIN_HANDLERS):
            # Only the built-in http handler: most likely the wrong --app (or one not finished), not a wish.
            fail(
                f"--app {app} registers no handlers, so this worker would only run the built-in http handler",
                hint="register one with @app.handler(...), pass --demo for the demo handlers (echo, sleep, flaky), "
                "--upstream URL for OpenAI batches, or --handlers http to run just that",
            )
        for name in names:
            by.registry.get(name)  # an unknown name is a clear error now, not a silent idle worker
        in_flight = concurrency or by.settings.worker_concurrency
        out.print(
            f"[bold green]batchyard worker[/] (pid {os.getpid()}) · handlers [cyan]{', '.join(names)}[/] · "
            f"concurrency {in_flight} · database {redact_url(by.settings.effective_database_url)}",
            soft_wrap=True,
        )
        if metrics_port is not None:
            from batchyard.metrics import serve_process_metrics

            try:
                serve_process_metrics(metrics_port, metrics_host)
            except OSError as exc:
                fail(
                    f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}",
                    hint="pick another --metrics-port",
                )
            out.print(f"metrics at [cyan]http://{metrics_host}:{metrics_port}/metrics[/]", soft_wrap=True)
        out.print("[dim]Ctrl-C or SIGTERM stops it gracefully.[/]")
        stats = by.run_worker(handlers=names, concurrency=concurrency)
    out.print(
        f"[bold]Worker stopped[/]: {humanize.count(stats.accepted)} items finished, "
        f"{humanize.count(stats.claimed)} claimed."
    )


db_app = typer.Typer(
    name="db",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="The database schema: [cyan]upgrade[/] applies migrations.",
)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, app: AppOption = None) -> None:
    """Apply any pending migrations to the database and print its revision.

    Workers and the server do this on start unless BATCHYARD_AUTO_MIGRATE=false; run it yourself when you
    turn that off (e.g. once per deploy).

    [bold]Examples[/]

      [cyan]batchyard db upgrade[/]

      [cyan]BATCHYARD_DATABASE_URL=postgresql://batch@db/batch batchyard db upgrade[/]
    """
    with open_app(ctx, app) as by:
        url = by.settings.effective_database_url
        before, revision = by.upgrade_database()
    shown = redact_url(url)
    if before is None:
        done = f"had no schema: created it. It is at revision [bold]{revision}[/] (latest)."
    elif before != revision:
        done = f"upgraded from revision {before}: it is at revision [bold]{revision}[/] (latest)."
    else:
        done = f"is at revision [bold]{revision}[/] (latest); nothing to do."
    out.print(f"[green]✔[/] Database {shown} {done}", soft_wrap=True)
