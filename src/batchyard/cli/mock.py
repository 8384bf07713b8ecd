"""``batchyard mock-upstream``: the OpenAI-compatible stub server (``batchyard.mockupstream``)."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from batchyard.cli.common import out


def mock_upstream(
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, metavar="PORT", help="Port (0: any free one, printed).")
    ] = 8001,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", min=0, metavar="MS", help="Mean latency of an answer, in milliseconds.")
    ] = 0.0,
    latency_spread: Annotated[
        float,
        typer.Option(
            "--latency-spread", min=0, max=2, metavar="SIGMA", help="Spread of the log-normal latency (0: fixed)."
        ),
    ] = 0.25,
    error_rate: Annotated[
        float, typer.Option("--error-rate", min=0, max=1, metavar="P", help="Fraction of requests answered 500.")
    ] = 0.0,
    rate_limit_rate: Annotated[
        float,
        typer.Option(
            "--rate-limit-rate", min=0, max=1, metavar="P", help="Fraction of requests answered 429 with Retry-After."
        ),
    ] = 0.0,
    retry_after: Annotated[
        float, typer.Option("--retry-after", min=0, metavar="SECONDS", help="Retry-After of the 429s.")
    ] = 1.0,
    dimensions: Annotated[
        int, typer.Option("--dimensions", min=1, max=4096, metavar="N", help="Embedding size when not asked.")
    ] = 16,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="BATCHYARD_MOCK_API_KEY",
            metavar="KEY",
            show_default=False,
            help="Require Authorization: Bearer KEY on /v1 requests (else 401).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", show_default=False, help="Seed of the random draws.")
    ] = None,
) -> None:
    """Run a fast OpenAI-compatible stub server, for demos, tests and benchmarks.

    It answers /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses and
    /v1/moderations with deterministic outputs and realistic usage, after a latency around --latency-ms, and
    fails only when asked (--error-rate, --rate-limit-rate, or a "mock" object in a request's body). GET /_stats
    counts what it answered.

    [bold]Examples[/]

      [cyan]batchyard mock-upstream --port 8001 --latency-ms 20[/]

      [cyan]batchyard run -i requests.jsonl -o results.jsonl --upstream http://127.0.0.1:8001/v1[/]
    """
    from batchyard.mockupstream import MockOptions, run_mock_upstream

    options = MockOptions(
        latency_ms=latency_ms,
        latency_spread=latency_spread,
        error_rate=error_rate,
        rate_limit_rate=rate_limit_rate,
        retry_after=retry_after,
        embedding_dimensions=dimensions,
        api_key=api_key,
        seed=seed,
    )

    def ready(url: str) -> None:
        out.print(
            f"[bold green]Mock upstream[/] listening on [cyan]{url}[/]  (stats: {url[:-3]}/_stats)", soft_wrap=True
        )
        out.print("[dim]Ctrl-C stops it.[/]")
        out.file.flush()  # whoever started it waits for this line, even through a pipe

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
    run_mock_upstream(host, port, options, on_ready=ready)
