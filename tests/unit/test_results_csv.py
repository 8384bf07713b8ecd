"""results.csv's last column, ``result``, is there when a row has something in it, and only then."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from batchyard.data import results
from batchyard.data.results import CsvWriter

BASE = ["key", "status", "attempts", "duration_ms", "error_type", "error_message"]


def row(key: str, result: Any, status: str = "succeeded") -> tuple[Any, ...]:
    text = None if result is None else json.dumps(result)
    return (0, key, status, 1, text, None, 1.0, 1.5, None)


def write(rows: list[tuple[Any, ...]], *, spool: bool = True) -> list[list[str]]:
    out = io.StringIO()
    writer = CsvWriter(out, spool=spool)
    for r in rows:
        writer.add(r)
    writer.close()
    return list(csv.reader(io.StringIO(out.getvalue())))


def test_no_result_column_when_every_result_is_null() -> None:
    table = write([row("a", None), row("b", None, status="failed")])

    assert table[0] == BASE
    assert [r[:2] for r in table[1:]] == [["a", "succeeded"], ["b", "failed"]]


def test_no_result_column_when_every_result_is_spread_into_columns() -> None:
    table = write([row("a", {"n": 1}), row("b", {"n": 2, "label": "x"})])

    assert table[0] == [*BASE, "result.n", "result.label"]
    assert table[2][-2:] == ["2", "x"]


def test_the_result_column_stays_when_any_row_has_something_in_it() -> None:
    table = write([row("a", None), row("b", [1, 2]), row("c", None)])

    assert table[0] == [*BASE, "result"]
    assert [r[-1] for r in table[1:]] == ["", "[1, 2]", ""]


@pytest.mark.parametrize("late", [None, "text"])
def test_rows_past_the_sample_decide_too(monkeypatch: pytest.MonkeyPatch, late: str | None) -> None:
    """Past the sample the rows wait in a spool: a late result keeps the column, else it goes from every row."""
    monkeypatch.setattr(results, "CSV_COLUMN_SAMPLE", 2)
    rows = [row(f"k{i}", {"n": i, "note": "é,\nx"}) for i in range(6)] + [row("last", late)]

    table = write(rows)

    columns = [*BASE, "result.n", "result.note"]
    assert table[0] == (columns if late is None else [*columns, "result"])
    assert [r[0] for r in table[1:]] == [*(f"k{i}" for i in range(6)), "last"]
    assert all(len(r) == len(table[0]) for r in table)
    assert table[3][7] == "é,\nx"  # a multi-line cell survives the spool
    assert table[-1][-1] == ("" if late is None else '"text"')


def test_a_partial_table_past_the_sample_keeps_the_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "CSV_COLUMN_SAMPLE", 2)

    table = write([row(f"k{i}", None) for i in range(4)], spool=False)

    assert table[0] == [*BASE, "result"]  # streamed at once: later rows could still need it
