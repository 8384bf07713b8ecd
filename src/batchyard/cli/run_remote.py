"""``batchyard run --url``: the run as a job on a Batchyard server, through its native API.

The input is checked here first (nothing is uploaded when a line is bad), uploaded, and made a job of the
``openai`` handler tagged with the run's key (``data/run_output.run_tag``), so the same command finds it again and
follows it instead of uploading twice. The server's workers send the requests to the server's upstreams. When the
job is finished its ``results.jsonl`` and ``errors.jsonl`` are downloaded and written as OpenAI output lines.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer

from batchyard.cli.common import err, open_client
from batchyard.data.openai_input import BatchInputReader, BatchInputRejected
from batchyard.data.run_output import detect_endpoint, run_key, run_tag, write_run_output
from batchyard.errors import InputInvalid, InputProblem

MAX_CHECKED_PROBLEMS = 100


def check_input(input_file: Path) -> str:
    """Check every line as a batch file; the endpoint. InputInvalid (nothing runs) when a line is bad."""
    endpoint = detect_endpoint(input_file)
    with input_file.open("rb") as stream:
        reader = BatchInputReader(
            stream, endpoint=endpoint, max_requests=100_000_000, max_line_bytes=8 * 1024 * 1024,
            max_problems=MAX_CHECKED_PROBLEMS,
        )  # fmt: skip
        try:
            for _ in reader.chunks(1000):
                pass
        except BatchInputRejected as rejected:
            problems = [InputProblem(p.line or 0, p.code, p.message) for p in rejected.problems]
            raise InputInvalid(problems, rejected.total, source=input_file.name) from None
    return endpoint


def run_remote(url: str, key: str | None, input_file: Path, output_file: Path, errors_file: Path | None) -> None:
    from batchyard.cli.run import EXIT_INTERRUPTED, _follow, _print_done, _print_interrupted, _print_start

    endpoint = check_input(input_file)
    tag = run_tag(input_file, output_file)
    with open_client(url, key) as client:
        found = client.list_jobs(tag=tag, handler="openai", limit=1).data
        resumed = bool(found) and found[0].status.value not in ("failed", "cancelled", "expired")
        if resumed:
            job = found[0]
        else:
            upload = client.upload_file(input_file)
            job = client.create_job(
                "openai",
                input_file_id=upload.id,
                params={"endpoint": endpoint},
                description=f"batchyard run {input_file.name} -> {output_file.name}",
                tags=["run", tag],
                idempotency_key=f"{run_key(input_file, output_file)[0][:200]}:{upload.id}",
            )
        _print_start(job, resumed, None)
        if not job.finished:
            try:
                job = _follow(lambda: client.get_job(job.id), err)
            except KeyboardInterrupt:
                _print_interrupted(client.get_job(job.id))
                err.print("[dim]The job goes on on the server; the same command follows it again.[/]")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        with tempfile.TemporaryDirectory(prefix="batchyard-run-") as tmp:
            rows: list[tuple[Any, ...]] = []
            for name, field in (("results.jsonl", "result"), ("errors.jsonl", "error")):
                if name not in (job.result_files or {}):
                    continue
                target = Path(tmp) / name
                client.download(job.id, name, target)
                rows += _rows(target, field)
            rows.sort(key=lambda row: int(row[0]))
            written = write_run_output(job.id, rows, output_file, errors_file)
    _print_done(job, written.succeeded, written.failed, output_file, errors_file)


def _rows(path: Path, field: str) -> list[tuple[Any, ...]]:
    """Rows as the store keeps them, ``(seq, key, status, attempts, result_json, error_json)``, from a job's
    results.jsonl / errors.jsonl."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            value = entry.get(field)
            text = json.dumps(value) if value is not None else None
            result, error = (text, None) if field == "result" else (None, text)
            rows.append((entry["seq"], entry["key"], entry["status"], entry.get("attempts", 0), result, error))
    return rows
