"""examples/job_email.py, the example of docs/email.md, run as a user would: it prints a real job's email, and
sends it to a real SMTP server when given addresses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.smtp import SmtpServer

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHYARD_SMTP_", "BATCHYARD_PUBLIC"))}
    environment.pop("BATCHYARD_DATABASE_URL", None)
    environment.update(BATCHYARD_DATA_DIR=str(data_dir), **env)
    return subprocess.run(
        [sys.executable, "examples/job_email.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_example_prints_the_email_of_the_job_it_ran(tmp_path: Path) -> None:
    done = _run([], tmp_path, BATCHYARD_PUBLIC_URL="http://127.0.0.1:8000")
    assert done.returncode == 0, done.stderr
    subject = r"Subject: Batchyard job (job_\w+) completed: 4 succeeded, 2 failed - March mailing\n"
    job_id = re.match(subject, done.stdout)
    assert job_id, done.stdout
    text = done.stdout.replace(job_id[1], "JOB")
    for expected in [
        "Job JOB completed: 4 succeeded, 2 failed\nMarch mailing\n",
        "\nItems\n  Total      6\n  Succeeded  4\n  Failed     2\n  Skipped    0\n  Cancelled  0\n",
        "\nUsage\n  Cost      0.008\n  Pixels  348,160\n",
        "Open the job: http://127.0.0.1:8000/jobs/JOB\n",
        "  errors.jsonl (2 rows, ",
        "    http://127.0.0.1:8000/api/v1/jobs/JOB/errors.jsonl\n",
        "  artifacts.zip (4 files, ",
        "  batchyard jobs download JOB -o JOB --url http://127.0.0.1:8000\n",
    ]:
        assert expected in text, expected
    assert re.search(r"\nDuration  \d", text)


def test_the_example_sends_the_email_to_an_smtp_server(tmp_path: Path, smtp_server: SmtpServer) -> None:
    done = _run(["ada@example.com", "bob@example.com"], tmp_path, **smtp_server.env())
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"sent 'Batchyard job job_\w+ completed: 4 succeeded, 2 failed - March mailing' to ada@example.com, "
        r"bob@example.com\n",
        done.stdout,
    )
    [received] = smtp_server.wait_for_messages(1)
    assert received.rcpt_tos == ["ada@example.com", "bob@example.com"]
    assert received.message["From"] == "Batchyard <batchyard@example.com>"
    assert "http" not in received.part("plain")  # no BATCHYARD_PUBLIC_URL: the CLI, not links
    assert re.search(r"\n  batchyard jobs download job_\w+ -o job_\w+\n", received.part("plain"))
