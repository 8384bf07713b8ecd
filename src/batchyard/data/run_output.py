"""``batchyard run``'s output files: OpenAI batch output lines written straight to the user's paths.

Lines are those of an OpenAI batch's output and error files (``data/openai_output.py``), in input order:
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``. Failed requests go to the
errors file when one is given, else to the output file beside the successes (as ``vllm run-batch`` writes them).
Each file is written to a temporary name and renamed at the end, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchyard.data.openai_input import BATCH_ENDPOINTS
from batchyard.data.openai_output import BATCH_CANCELLED, error_line, output_line

DEFAULT_ENDPOINT = "/v1/chat/completions"
HASH_CHUNK_BYTES = 1 << 20


def run_key(input_path: Path, output_path: Path) -> tuple[str, str]:
    """(key, content hash) of a run: ``run:<sha256 of the input's bytes>:<sha256 of the output path>[:32]``.
    The same input file and output path are the same run (found again on rerun); anything else is another."""
    digest = hashlib.sha256()
    with input_path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    content = digest.hexdigest()
    where = hashlib.sha256(str(output_path.resolve()).encode()).hexdigest()
    return f"run:{content}:{where[:32]}", content


def run_tag(input_path: Path, output_path: Path) -> str:
    """The tag that finds a run on a server again: ``run-`` and 24 hex digits of its key."""
    return "run-" + hashlib.sha256(run_key(input_path, output_path)[0].encode()).hexdigest()[:24]


def detect_endpoint(input_path: Path) -> str:
    """The endpoint of the first request line when it names a known one (every other line must match it)."""
    with input_path.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                return DEFAULT_ENDPOINT
            url = line.get("url") if isinstance(line, dict) else None
            return url if isinstance(url, str) and url in BATCH_ENDPOINTS else DEFAULT_ENDPOINT
    return DEFAULT_ENDPOINT


@dataclass(frozen=True, slots=True)
class RunOutput:
    succeeded: int
    failed: int


def write_run_output(
    job_id: str,
    rows: Iterable[tuple[Any, ...]],
    output: Path,
    errors: Path | None,
    *,
    unexecuted_code: str = BATCH_CANCELLED,
) -> RunOutput:
    """Write every row (``(seq, key, status, attempts, result_json, error_json, ...)``, as the store keeps
    items) of a finished job: succeeded to ``output``, failed and cancelled to ``errors`` (or ``output``)."""
    out_tmp = output.with_name(f".{output.name}.partial")
    err_tmp = errors.with_name(f".{errors.name}.partial") if errors is not None else None
    succeeded = failed = 0
    try:
        with (
            out_tmp.open("w", encoding="utf-8") as out,
            err_tmp.open("w", encoding="utf-8") if err_tmp is not None else open(os.devnull, "w") as err,
        ):
            failures = err if err_tmp is not None else out
            for row in rows:
                status = row[2]
                if status == "succeeded":
                    out.write(output_line(job_id, row))
                    succeeded += 1
                elif status in ("failed", "cancelled"):
                    failures.write(error_line(job_id, row, unexecuted_code))
                    failed += 1
        out_tmp.replace(output)
        if err_tmp is not None and errors is not None:
            err_tmp.replace(errors)
    finally:
        out_tmp.unlink(missing_ok=True)
        if err_tmp is not None:
            err_tmp.unlink(missing_ok=True)
    return RunOutput(succeeded, failed)
