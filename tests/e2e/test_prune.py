"""``batchyard prune`` as an operator runs it: a dry run's table and JSON, then the real run removing exactly that."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.helpers import write_jsonl
from tests.e2e.test_cli import Cli


def test_prune_dry_run_counts_what_the_real_run_removes(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data", tmp_path)
    first = cli.json("submit", str(write_jsonl(tmp_path / "a.jsonl", 30)), "--handler", "echo", "--wait")
    second = cli.json("submit", str(write_jsonl(tmp_path / "b.jsonl", 12)), "--handler", "echo", "--wait")
    queued = cli.json("submit", str(write_jsonl(tmp_path / "c.jsonl", 5)), "--handler", "echo")

    table = cli.run("prune", "--older-than", "0s", "--dry-run")
    assert table.returncode == 0, table.stderr
    assert "Would remove" in table.stdout and "without --dry-run" in table.stdout
    plan = cli.json("prune", "--older-than", "0s", "--dry-run")
    assert plan["dry_run"] is True
    assert (plan["jobs"], plan["items"], plan["uploads"]) == (2, 42, 0)
    assert plan["files"] >= 6 and plan["bytes"] > 0  # results.jsonl, errors.jsonl, results.csv of each
    assert {j["id"] for j in cli.json("jobs", "list")} == {first["id"], second["id"], queued["id"]}

    done = cli.json("prune", "--older-than", "0s")
    assert {k: done[k] for k in ("jobs", "items", "uploads", "files", "bytes")} == {
        k: plan[k] for k in ("jobs", "items", "uploads", "files", "bytes")
    }
    assert done["dry_run"] is False and done["done"] is True
    assert [j["id"] for j in cli.json("jobs", "list")] == [queued["id"]]  # the unfinished job stays
    assert not (cli.data_dir / "files" / "jobs" / first["id"]).exists()
    shown = cli.run("jobs", "show", first["id"])
    assert shown.returncode != 0 and "no job" in shown.stderr

    nothing = cli.run("prune", "--older-than", "30d")
    assert nothing.returncode == 0, nothing.stderr
    assert "Removed" in nothing.stdout and "30d" in nothing.stdout


def test_prune_refuses_an_age_it_cannot_read_and_without_one_keeps_jobs(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data", tmp_path)
    job = cli.json("submit", str(write_jsonl(tmp_path / "a.jsonl", 3)), "--handler", "echo", "--wait")
    bad = cli.run("prune", "--older-than", "30 days")
    assert bad.returncode == 2
    assert "not a duration" in bad.stderr and "30d" in bad.stderr
    kept = cli.json("prune")
    assert kept["jobs"] == 0 and kept["older_than_seconds"] is None
    assert [j["id"] for j in cli.json("jobs", "list")] == [job["id"]]
    told = cli.run("prune", "--dry-run")
    assert "BATCHYARD_JOB_RETENTION_DAYS is not set" in told.stderr
