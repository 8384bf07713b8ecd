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


def test_token_budget_example_pauses_on_the_apps_balance_and_finishes_after_a_top_up(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/token_budget.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "paused (paused_by_handler): Token balance exhausted: 0 of 1,200 left",
        "  4 written, 1 skipped, 1 waiting",
        "completed: 5 written, 1 skipped, 300 tokens left",
        "  tea: succeeded, Ten things about tea",
        "  coffee: skipped, an article on 'coffee' exists already",
        "  cocoa: succeeded, Ten things about cocoa",
        "  mate: succeeded, Ten things about mate",
        "  chai: succeeded, Ten things about chai",
        "  kombucha: succeeded, Ten things about kombucha",
    ]


def test_rerun_cancelled_example_keeps_the_first_runs_results(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/rerun_cancelled.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "cancelled: 3 imported, 3 cancelled",
        "queued again: 3 items",
        "completed: 6 imported; timeline: created, started, cancelling, cancelled, rerun, finalizing, completed",
        "  row-0: run 1",
        "  row-1: run 1",
        "  row-2: run 1",
        "  row-3: run 2",
        "  row-4: run 2",
        "  row-5: run 2",
    ]


def test_long_task_example_shows_one_items_progress_while_it_runs(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/long_task.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    *steps, last = done.stdout.splitlines()
    assert last == "completed: 10,000 rows in one item"
    seen = [re.fullmatch(r" *(\d+\.\d)%  (.+)", line) for line in steps]
    assert all(seen), steps
    percents = [float(m.group(1)) for m in seen if m]
    assert percents == sorted(percents)
    assert len([p for p in percents if 0 < p < 100]) >= 3, f"a one-item job moved through its steps: {steps}"
    for m in seen:
        assert m is not None
        if m.group(2) != "reading the header":
            rows = int(re.fullmatch(r"imported ([\d,]+) of 10,000 rows", m.group(2)).group(1).replace(",", ""))  # type: ignore[union-attr]
            assert float(m.group(1)) == rows / 100  # the percent is the item's own fraction done


def test_webhook_receiver_example_verifies_both_signatures(tmp_path: Path) -> None:
    done = _run([sys.executable, "examples/webhook_receiver.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"endpoint wh_[0-9a-f]{16}: job\.completed", lines[0])
    job_id = lines[1].split()[0]
    assert lines[1:] == [
        f"{job_id} completed",
        f"job.completed {job_id} (2 succeeded) verified with the endpoint's secret",
        f"job.completed {job_id} (2 succeeded) verified with the owner's default secret",
    ]
