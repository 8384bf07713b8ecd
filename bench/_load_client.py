"""A closed-loop HTTP load generator for ``bench/api.py``, run in its own process (not a test).

Each of N clients holds one keep-alive connection and sends its next request as soon as the previous answer is
read (no think time), for a fixed duration. The client is a few lines of HTTP/1.1 over asyncio streams rather
than httpx: on a 2-core machine the load generator shares the CPU with the server, and httpx spends several times
more CPU per request, which would be measured as server latency. It reads the answers Batchyard's routes give
(``Content-Length`` or chunked bodies).

    python bench/_load_client.py --url http://127.0.0.1:8000 --key by_... --op list --clients 50 --seconds 10

Prints one JSON object: the operation, clients, seconds measured, latencies in ms (sorted), and the errors
(status codes other than the expected one, or broken connections) with a count per kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit

CREATE_ITEMS = 10
EXPECTED_STATUS = {"create": 201, "list": 200}


def request_bytes(op: str, host: str, key: str, n: int) -> bytes:
    if op == "create":
        body = json.dumps(
            {
                "handler": "echo",
                "items": [{"custom_id": f"i{i}", "n": n} for i in range(CREATE_ITEMS)],
                "description": f"load {n}",
            }
        ).encode()
        head = (
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body
    if op == "list":
        return (f"GET /api/v1/jobs?limit=50 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n").encode()
    raise ValueError(op)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server will close the connection); the body is read and dropped."""
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = close = False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) != 0:
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
    elif length:
        await reader.readexactly(length)
    return status, close


async def client(
    op: str,
    host: str,
    port: int,
    key: str,
    warmup_until: float,
    stop_at: float,
    ident: int,
    latencies: list[float],
    errors: Counter[str],
) -> None:
    writer: asyncio.StreamWriter | None = None
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        payload = request_bytes(op, f"{host}:{port}", key, ident * 1_000_000 + n)
        started = time.perf_counter()
        measured = time.monotonic() >= warmup_until
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            status, close = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if measured:
                errors[type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.05)
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        if measured:
            latencies.append(elapsed_ms)
            if status != EXPECTED_STATUS[op]:
                errors[f"HTTP {status}"] += 1
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def run(url: str, key: str, op: str, clients: int, seconds: float, warmup: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    now = time.monotonic()
    warmup_until, stop_at = now + warmup, now + warmup + seconds
    await asyncio.gather(
        *(client(op, host, port, key, warmup_until, stop_at, i, latencies, errors) for i in range(clients))
    )
    measured = time.monotonic() - warmup_until
    return {
        "op": op,
        "clients": clients,
        "seconds": measured,
        "latencies_ms": sorted(latencies),
        "errors": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--op", choices=sorted(EXPECTED_STATUS), required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring starts")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.key, args.op, args.clients, args.seconds, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
