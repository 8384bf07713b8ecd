"""``batchyard mock-upstream`` as a real subprocess on a free port, for every test that needs an upstream.

Use the ``mock_upstream`` fixture (default options) or ``start_mock_upstream(...)`` as a context manager for
others (latency, injected errors, a required key)::

    def test_x(mock_upstream: MockUpstreamProcess) -> None:
        ... BATCHYARD_UPSTREAM_URL=mock_upstream.url ...
        assert mock_upstream.stats()["by_key"]["hello 1"] == 1
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import httpx

from tests.waits import wait_until

CLI = [sys.executable, "-m", "batchyard.cli.main"]
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+/v1)")


class MockUpstreamProcess:
    """A running ``batchyard mock-upstream``: ``url`` is its base URL (ending in /v1)."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
        env.update(PYTHONUNBUFFERED="1", COLUMNS="200")
        self.process = subprocess.Popen(
            [*CLI, "mock-upstream", "--host", "127.0.0.1", "--port", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._output: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()
        self.url: str = wait_until(self._ready, what="mock-upstream to listen", timeout=30)
        self.root = self.url.removesuffix("/v1")

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._output.append(line)

    def _ready(self) -> str:
        if self.process.poll() is not None:
            raise AssertionError(f"mock-upstream exited with {self.process.returncode}:\n{self.output}")
        found = READY.search(self.output)
        return found.group(1) if found else ""

    @property
    def output(self) -> str:
        return "".join(self._output)

    def stats(self) -> dict[str, Any]:
        """What it answered so far: requests, by_status, by_endpoint, by_key (requests per request text)."""
        answer = httpx.get(f"{self.root}/_stats", timeout=10)
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats

    def reset(self) -> None:
        httpx.post(f"{self.root}/_reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def start_mock_upstream(*args: str) -> Iterator[MockUpstreamProcess]:
    """Run ``batchyard mock-upstream ARGS`` (e.g. ``"--latency-ms", "20"``) for the ``with`` block."""
    mock = MockUpstreamProcess(*args)
    try:
        yield mock
    finally:
        mock.stop()
