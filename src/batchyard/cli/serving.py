"""Uvicorn for ``batchyard serve``, imported only when a server starts (the rest of the CLI never needs it)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

GRACEFUL_SHUTDOWN_SECONDS = 5  # open connections (live event streams) get this long to finish on SIGTERM


class BannerServer(uvicorn.Server):
    """Uvicorn, printing Batchyard's banner once it really accepts connections."""

    def __init__(self, config: uvicorn.Config, banner: Callable[[], None]) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._banner()

    def request_stop(self, signum: int, frame: object) -> None:
        # Only in use until Uvicorn installs its own handlers, and after it restores these and re-raises the
        # signal it stopped for: a second graceful stop request is harmless, dying by the signal (exit -15) is not.
        self.should_exit = True


def run_server(api: Any, sock: socket.socket, *, access_log: bool, banner: Callable[[], None]) -> bool:
    """Serve ``api`` on ``sock`` until stopped; ``banner`` runs once connections are accepted. False when the
    server did not start (Uvicorn logged why)."""
    config = uvicorn.Config(
        api,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    server = BannerServer(config, banner)
    previous = {sig: signal.signal(sig, server.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(server.started)
