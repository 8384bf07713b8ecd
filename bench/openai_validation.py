"""What checking an OpenAI batch input file costs (not a test; prints a table).

The same N-line chat-completions file, in the same run:

- **plain JSONL ingest**: ``data.ingest.ItemReader``, the reader of every native job (parse, key, duplicate
  check): the floor for reading the file.
- **OpenAI checks**: ``data.openai_input.BatchInputReader``: the same plus every line's custom_id, method, url,
  body, model and stream checked (what ``/v1/batches`` does after create).
- **create + validate**: ``POST /v1/batches``' service on SQLite: create the batch, then validate it (read,
  check and insert every request in one transaction): the time a batch stays ``validating``.

    python bench/openai_validation.py                  # 50,000 lines (OpenAI's most per batch)
    python bench/openai_validation.py --lines 10000
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from batchyard import Batchyard
from batchyard.data.ingest import ItemReader
from batchyard.data.openai_input import BatchInputReader
from batchyard.openai_wire import job_id_of
from batchyard.services.auth import Principal, Role


def make_file(lines: int) -> bytes:
    out = io.BytesIO()
    for i in range(lines):
        body = {"model": "m", "messages": [{"role": "user", "content": f"hello {i} " * 10}], "max_tokens": 50}
        line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        out.write(json.dumps(line).encode())
        out.write(b"\n")
    return out.getvalue()


def timed(label: str, run: Callable[[], None]) -> tuple[str, float]:
    started = time.perf_counter()
    run()
    return label, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    lines = parser.parse_args().lines
    content = make_file(lines)

    def plain() -> None:
        reader = ItemReader(io.BytesIO(content), format="jsonl", max_line_bytes=8 << 20)
        assert sum(len(chunk) for chunk in reader.chunks(5000)) == lines

    def checked() -> None:
        reader = BatchInputReader(
            io.BytesIO(content), endpoint="/v1/chat/completions", max_requests=lines, max_line_bytes=8 << 20
        )
        assert sum(len(chunk) for chunk in reader.chunks(5000)) == lines

    with tempfile.TemporaryDirectory() as tmp:
        app = Batchyard(data_dir=Path(tmp))
        owner = Principal("bench", Role.MEMBER)
        upload = app.files.upload(owner, io.BytesIO(content), filename="requests.jsonl", purpose="batch")
        service = app.openai_batches

        def create_and_validate() -> None:
            batch = service.create(
                owner, input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            assert service.validate(job_id_of(batch.id) or "")
            assert service.get(batch.id, owner).status == "in_progress"

        rows = [timed("plain JSONL ingest", plain), timed("OpenAI checks", checked)]
        rows.append(timed("create + validate (SQLite)", create_and_validate))
        app.close()

    print(f"{lines:,} lines, {len(content) / 1e6:.1f} MB")
    print(f"{'':28} {'seconds':>8} {'lines/s':>10}")
    for label, seconds in rows:
        print(f"{label:28} {seconds:8.2f} {lines / seconds:10,.0f}")


if __name__ == "__main__":
    main()
