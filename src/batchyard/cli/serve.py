"""``batchyard serve``: the HTTP API, the dashboard, workers and maintenance in one process (Uvicorn)."""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from batchyard import __version__
from batchyard.cli.appref import DemoOption
from batchyard.cli.common import (
    AppOption,
    UpstreamOption,
    hint_command,
    open_app,
    out,
    redact_url,
    use_upstream,
)
from batchyard.cli.worker import LogFormat, LogFormatOption, LogLevel, LogLevelOption, configure_logging
from batchyard.errors import ConfigError
from batchyard.services.auth import LOGIN_TOKEN_TTL_SECONDS

if TYPE_CHECKING:
    from batchyard.app import Batchyard

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
GRACEFUL_SHUTDOWN_SECONDS = 5  # open connections (live event streams) get this long to finish on SIGTERM
LISTEN_BACKLOG = 2048
_ALL_INTERFACES = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_SECRET_QUERY = re.compile(r"((?:token|api_key)=)[^&\s]+")


class RedactSecrets(logging.Filter):
    """Access-log lines must not carry the one-time login token (``/login?token=...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port now, so a taken port is a clear error before anything starts (port 0: any free one)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host!r}: not an address or host name this machine has ({exc.strerror})", param="host"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        hint = "pick another with --port" if exc.errno in (98, 48, 10048) else "check --host and --port"
        raise ConfigError(
            f"cannot listen on {_display_host(host)}:{port}: {exc.strerror or exc}; {hint}", param="port"
        ) from None
    sock.set_inheritable(True)
    return sock


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def base_url(sock: socket.socket) -> str:
    """The URL to open in a browser: loopback when listening on every interface."""
    host, port = sock.getsockname()[:2]
    return f"http://{_display_host(_ALL_INTERFACES.get(host, host))}:{port}"


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            envvar="BATCHYARD_HOST",
            metavar="ADDRESS",
            help="Address to listen on; 0.0.0.0 opens it to the network (every API call still needs a key).",
        ),
    ] = DEFAULT_HOST,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            envvar="BATCHYARD_PORT",
            min=0,
            max=65535,
            metavar="PORT",
            help="Port to listen on (0: any free port, printed on start).",
        ),
    ] = DEFAULT_PORT,
    app: AppOption = None,
    demo: DemoOption = False,
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            metavar="",
            help="Serve the API only; run [bold]batchyard worker[/] processes (on the same database) for the items.",
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            metavar="N",
            help="Items in flight in the built-in worker. Default: BATCHYARD_WORKER_CONCURRENCY (256).",
        ),
    ] = None,
    upstream: UpstreamOption = None,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.text,
    access_log: Annotated[
        bool, typer.Option("--access-log", metavar="", help="Log every HTTP request on stderr.")
    ] = False,
) -> None:
    """Run the server: REST API, dashboard, a worker and maintenance in one process, until stopped.

    On start it prints the dashboard URL with a one-time login token (like Jupyter) and where the API docs
    are. SQLite under the data dir unless [bold]--db[/] says otherwise. Ctrl-C or SIGTERM stops it gracefully:
    no new requests, items in flight get BATCHYARD_SHUTDOWN_GRACE_SECONDS to finish.

    Prometheus metrics are at /metrics (an admin key, or none with BATCHYARD_METRICS_PUBLIC=true). With
    BATCHYARD_JOB_RETENTION_DAYS set, maintenance deletes finished jobs that finished longer ago (see
    [cyan]batchyard prune[/]); unset, jobs are kept.

    [bold]Examples[/]

      [cyan]batchyard serve[/]

      [cyan]batchyard serve --app mypkg.jobs:app --port 9000[/]

      [cyan]batchyard serve --db postgresql://batch@db/batch --host 0.0.0.0 --no-workers[/]
    """
    configure_logging(log_level, log_format)
    _configure_server_logs(log_level, access_log)
    sock = bind_socket(host, port)
    try:
        with open_app(ctx, app, demo=demo) as by:
            use_upstream(by, upstream)
            worker_options = {"concurrency": concurrency} if concurrency else None
            from batchyard.api import create_app
            from batchyard.cli.serving import run_server

            api = create_app(batchyard=by, run_workers=not no_workers, worker_options=worker_options)
            token = by.auth.create_login_token()
            url = base_url(sock)
            banner = functools.partial(_print_banner, ctx, app, by, url, token, host, no_workers, concurrency)
            if not run_server(api, sock, access_log=access_log, banner=banner):
                raise typer.Exit(1)  # startup failed (Uvicorn logged why)
    finally:
        sock.close()
    out.print("[bold]Batchyard stopped.[/]")


def _configure_server_logs(level: LogLevel, access_log: bool) -> None:
    # Uvicorn's "Started server process" and friends say nothing the banner does not; warnings still show.
    verbose = level is LogLevel.debug
    logging.getLogger("uvicorn.error").setLevel(logging.DEBUG if verbose else logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    access.addFilter(RedactSecrets())


def _print_banner(
    ctx: typer.Context,
    app_ref: str | None,
    by: Batchyard,
    url: str,
    token: str,
    host: str,
    no_workers: bool,
    concurrency: int | None,
) -> None:
    def row(label: str, value: str) -> None:
        out.print(f"  [bold]{label:<10}[/] {value}", soft_wrap=True)

    out.print(f"[bold green]Batchyard {__version__}[/] is running (pid {os.getpid()}).", soft_wrap=True)
    row("Dashboard", f"{escape(url)}/login?token={token}")
    row(
        "",
        f"[dim]a one-time link that signs your browser in, valid {LOGIN_TOKEN_TTL_SECONDS / 60:.0f} minutes; "
        "restarting the server prints a new one and voids this one[/]",
    )
    row("API docs", f"{escape(url)}/docs  [dim](OpenAPI: {escape(url)}/openapi.json)[/]")
    row("Database", escape(redact_url(by.settings.effective_database_url)))
    if no_workers:
        row("Workers", f"none here (--no-workers): run [cyan]{hint_command(ctx, app_ref, 'worker')}[/]")
    else:
        in_flight = concurrency or by.settings.worker_concurrency
        from batchyard.handlers import served_handlers

        names = ", ".join(served_handlers(by.registry, by.settings))
        row("Workers", f"handlers [cyan]{escape(names)}[/] · concurrency {in_flight}")
    if by.settings.upstream_url:
        from batchyard.outbound.upstreams import display_url

        row("Upstream", escape(display_url(by.settings.upstream_url)))
    row("API key", f"[cyan]{hint_command(ctx, app_ref, 'keys create', '--owner', 'NAME', '--role', 'member')}[/]")
    if host in _ALL_INTERFACES:
        out.print(
            f"  [yellow]Listening on every interface ({escape(host or '*')})[/]: anyone who can reach this "
            "machine reaches the API; every call still needs a key.",
            soft_wrap=True,
        )
    out.print("[dim]Ctrl-C or SIGTERM stops it gracefully.[/]")
