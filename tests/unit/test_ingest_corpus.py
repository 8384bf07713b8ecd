"""Each file in tests/data/bad_inputs yields exactly the problems listed for it in expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchyard.data.ingest import ItemReader
from batchyard.errors import InputInvalid

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bad_inputs"
EXPECTED: dict[str, list[list[int | str]]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
# Small, so that long_line.jsonl stays small too; every other corpus line is well under it.
CORPUS_MAX_LINE_BYTES = 1024


def test_every_corpus_file_has_expectations_and_vice_versa() -> None:
    on_disk = {path.name for path in CORPUS.iterdir() if path.suffix in (".jsonl", ".csv")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_yields_exactly_the_expected_problems(name: str) -> None:
    reader = ItemReader(CORPUS / name, max_line_bytes=CORPUS_MAX_LINE_BYTES)
    yielded = 0
    try:
        for chunk in reader.chunks(100):
            yielded += len(chunk)
    except InputInvalid as exc:
        found = [[problem.line, problem.code] for problem in exc.problems]
        assert exc.total == len(exc.problems)
        assert exc.source == str(CORPUS / name)
        assert all(problem.message for problem in exc.problems)
    else:
        found = []
        assert yielded == reader.count > 0
    assert found == EXPECTED[name]
