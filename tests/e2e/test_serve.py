"""``batchyard serve`` as a user runs it: a real server subprocess on a free port with a temporary data dir."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

CLI = [sys.executable, "-m", "batchyard.cli.main"]
LOGIN_URL = re.compile(r"(http://127\.0\.0\.1:(\d+))/login\?token=([A-Za-z0-9_-]+)")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHYARD_")}
    env.update(BATCHYARD_DATA_DIR=str(data_dir), COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    return env


class ServerProcess:
    """``batchyard serve`` in a subprocess; its output is read continuously so the pipes never fill up."""

    def __init__(self, data_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.cwd = cwd
        self.process = subprocess.Popen(
            [*CLI, "serve", *args],
            cwd=cwd,
            env=cli_env(data_dir, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self._stdout), (self.process.stderr, self._stderr))
        ]
        for reader in self._readers:
            reader.start()
        self.url, self.login_token = self._wait_until_up()

    @staticmethod
    def _drain(stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _wait_until_up(self) -> tuple[str, str]:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.kill()
                raise AssertionError(f"serve exited with {self.process.returncode}\n{self.stdout}\n{self.stderr}")
            found = LOGIN_URL.search(self.stdout)
            if found:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{found[1]}/healthz", timeout=2).status_code == 200:
                        return found[1], found[3]
            time.sleep(0.1)
        raise AssertionError(f"serve did not come up in {START_TIMEOUT_SECONDS}s\n{self.stdout}\n{self.stderr}")

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None and not any(r.is_alive() for r in self._readers):
                stream.close()

    def cli(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        """Another ``batchyard`` command on the server's data dir (``keys create``, ...)."""
        return subprocess.run(
            [*CLI, *args],
            cwd=self.cwd,
            env=cli_env(self.data_dir, **env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_key(self, owner: str, role: str = "member") -> str:
        done = self.cli("keys", "create", "--owner", owner, "--role", role)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._join_readers()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._join_readers()


@contextlib.contextmanager
def running_server(data_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``batchyard serve ARGS`` with ``env`` (BATCHYARD_* settings) on top of a clean environment."""
    server = ServerProcess(data_dir, cwd, *args, env=env)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path / "data", tmp_path, "--port", str(free_port())) as process:
        yield process


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_serve_prints_where_everything_is_and_answers_health_and_readiness(server: ServerProcess) -> None:
    out = server.stdout

    assert f"{server.url}/login?token={server.login_token}" in out
    assert f"{server.url}/docs" in out
    assert f"sqlite:///{server.data_dir / 'batchyard.db'}" in out
    assert "keys create --owner NAME --role member" in out
    assert "handlers echo, flaky, http, sleep" in out
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/api/v1/me" in paths and "/api/v1/session" in paths
    assert (server.data_dir / "batchyard.db").exists()


def test_the_one_time_login_token_signs_in_once(server: ServerProcess) -> None:
    first = httpx.post(f"{server.url}/api/v1/session", json={"token": server.login_token})

    assert first.status_code == 200, first.text
    assert first.json()["role"] == "admin"
    assert first.json()["csrf_token"]
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    again = httpx.post(f"{server.url}/api/v1/session", json={"token": server.login_token})
    assert again.status_code == 401
    assert "already used" in again.json()["error"]["message"]


def test_a_restart_voids_the_login_links_printed_before(tmp_path: Path) -> None:
    """Issue 11: a link printed by an earlier run signed in as admin after two restarts (it lived 24 h)."""
    data_dir = tmp_path / "data"
    earlier = []
    for _ in range(2):
        with running_server(data_dir, tmp_path, "--port", str(free_port())) as server:
            earlier.append(server.login_token)
            assert "valid 15 minutes" in server.stdout and "voids this one" in server.stdout
            assert server.stop() == 0
    with running_server(data_dir, tmp_path, "--port", str(free_port())) as server:
        for token in earlier:
            response = httpx.get(f"{server.url}/login", params={"token": token}, follow_redirects=False)
            assert response.status_code == 401, response.text
            assert httpx.post(f"{server.url}/api/v1/session", json={"token": token}).status_code == 401
        assert (
            httpx.get(f"{server.url}/login", params={"token": server.login_token}, follow_redirects=False).status_code
            == 303
        )

        # and revoking a key with the CLI signs out the browser that signed in with it
        key = server.create_key("carol")
        browser = httpx.Client(base_url=server.url)
        signed_in = browser.post("/api/v1/session", json={"api_key": key})
        csrf = signed_in.json()["csrf_token"]
        assert browser.get("/api/v1/me").status_code == 200
        key_id = json.loads(server.cli("keys", "list", "--json").stdout)[-1]["id"]
        assert server.cli("keys", "revoke", key_id).returncode == 0
        assert browser.get("/api/v1/me").status_code == 401
        submitted = browser.post("/api/v1/jobs", json={"handler": "echo", "items": [1]}, headers={"X-CSRF-Token": csrf})
        assert submitted.status_code == 401
        browser.close()


def test_keys_create_prints_only_a_key_that_authenticates_until_revoked(server: ServerProcess) -> None:
    created = server.cli("keys", "create", "--owner", "alice", "--role", "viewer", "--name", "e2e")

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n"
    assert re.fullmatch(r"by_[A-Za-z0-9_-]{30,}", key)
    assert "shown only this once" in created.stderr
    assert key not in created.stderr
    me = httpx.get(f"{server.url}/api/v1/me", headers=bearer(key))
    assert me.status_code == 200, me.text
    assert me.json() == {"owner": "alice", "role": "viewer", "via": "key"}

    listed = json.loads(server.cli("keys", "list", "--json").stdout)
    assert [(k["owner"], k["role"], k["name"], k["prefix"]) for k in listed] == [("alice", "viewer", "e2e", key[:11])]
    assert listed[0]["last_used_at"] is not None
    table = server.cli("keys", "list")
    assert listed[0]["id"] in table.stdout and "active" in table.stdout and key not in table.stdout

    revoked = server.cli("keys", "revoke", key[:11])
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked {listed[0]['id']}" in revoked.stdout
    refused = httpx.get(f"{server.url}/api/v1/me", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid or revoked API key"
    again = server.cli("keys", "revoke", listed[0]["id"])
    assert again.returncode == 0 and "already revoked" in again.stdout
    missing = server.cli("keys", "revoke", "key_nope")
    assert missing.returncode == 1 and "no API key 'key_nope'" in missing.stderr


def test_keys_create_refuses_a_bad_owner_or_role(server: ServerProcess) -> None:
    spaced = server.cli("keys", "create", "--owner", "two words")
    assert spaced.returncode == 1 and spaced.stdout == ""
    assert "without spaces" in spaced.stderr
    role = server.cli("keys", "create", "--owner", "alice", "--role", "boss")
    assert role.returncode == 2 and role.stdout == ""
    assert "boss" in role.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_gracefully_with_exit_0(server: ServerProcess, sig: signal.Signals) -> None:
    started = time.monotonic()

    code = server.stop(sig)

    assert code == 0, server.stderr
    assert time.monotonic() - started < 10
    assert "Batchyard stopped." in server.stdout
    assert "Traceback" not in server.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz")


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*CLI, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=cli_env(tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "pick another with --port" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_workers_serves_the_api_only_and_says_how_to_start_one(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", tmp_path, "--port", "0", "--no-workers") as process:
        assert "none here (--no-workers)" in process.stdout
        assert "worker" in process.stdout
        key = process.create_key("alice")
        handlers = httpx.get(f"{process.url}/api/v1/handlers", headers=bearer(key)).json()["data"]
        assert all(h["live_workers"] == 0 for h in handlers)
        assert process.stop() == 0
