"""Shared by the CLI tests: input files and the shape of a clean failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, n: int, **fields: Any) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"custom_id": f"item-{i}", "n": i, **fields}) + "\n")
    return path


def assert_clean_error(done: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    """Failed with ``code``, said why on stderr, printed nothing on stdout and no traceback."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr
