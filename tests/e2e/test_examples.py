"""The examples in the docs are real: run them as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHYARD_DATA_DIR": str(data_dir)}
    env.pop("BATCHYARD_DATABASE_URL", None)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_wordcount_example_runs(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/wordcount.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"job_\w+: completed, 3/3 succeeded, 24 words", lines[0])
    assert lines[1:] == [
        "text-0 {'words': 9, 'longest': 'quick'}",
        "text-1 {'words': 7, 'longest': 'thousands'}",
        "text-2 {'words': 8, 'longest': 'retries'}",
    ]


def test_readme_python_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code, shown = re.findall(r"```python\n(.*?)```\n```\n(.*?)```", readme, re.S)[0]
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    done = _run([sys.executable, str(script)], tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_shared_resource_example_starts_its_resource_once_for_100_items(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/shared_resource.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "renderer closed after 100 pages",  # the worker of wait() stopped, and cleaned it up
        "completed: 100/100 pages, renderer started 1 time(s)",
    ]
