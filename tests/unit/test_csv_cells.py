"""Every CSV cell Batchyard writes is shown by a spreadsheet as the text it is: never run as a formula (CSV
injection), and always writable (text UTF-8 cannot encode is escaped, not a crash)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from batchyard.data.results import CsvWriter, csv_cell

FORMULAS = [
    "=cmd|' /C calc'!A0",
    "@SUM(1)",
    "+1+1",
    "-1+1",
    "=1",
    "\t=1",
    "\r=1",
    '=HYPERLINK("http://x")',
    "-",
    "+",
    "@",
    "=",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_a_spreadsheet_would_run_is_quoted(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize(
    "value", ["plain", "", "a=b", "1", "-5", "-1.5", "+3", "-2e10", ".5", "'=already", 7, -7, -1.5, None]
)
def test_plain_text_and_numbers_are_unchanged(value: object) -> None:
    assert csv_cell(value) == ("" if value is None else value)


def test_unencodable_text_is_escaped_not_a_crash() -> None:
    assert csv_cell("a\ud800b") == "a\\ud800b"
    assert csv_cell("=\udcff") == "'=\\udcff"
    csv_cell("a\ud800b").encode("utf-8")


def _row(seq: int, key: str, result: object, error: dict[str, str] | None = None) -> tuple[object, ...]:
    status = "failed" if error else "succeeded"
    return (
        seq,
        key,
        status,
        1,
        None if error else json.dumps(result),
        json.dumps(error) if error else None,
        1.0,
        1.5,
        None,
    )


def test_results_csv_quotes_every_cell_a_spreadsheet_would_run() -> None:
    out = io.StringIO()
    writer = CsvWriter(out)
    writer.add(_row(0, "=key", {"a": "=cmd|calc", "b": -3, "c": ["=x"]}))
    writer.add(_row(1, "@k", "@SUM(1)"))
    writer.add(_row(2, "k2", None, {"type": "ValueError", "message": '=HYPERLINK("x")'}))
    writer.add(_row(3, "k3", {"a": "+1+1", "d": "-2+3", "e": "\ud800", "f": True}))
    writer.close()
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == [
        "key",
        "status",
        "attempts",
        "duration_ms",
        "error_type",
        "error_message",
        "result.a",
        "result.b",
        "result.c",
        "result.d",
        "result.e",
        "result.f",
        "result",
    ]
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r") or cell.startswith("-2+")]
    assert rows[1][0] == "'=key" and rows[1][6] == "'=cmd|calc" and rows[1][7] == "-3"
    assert rows[2][0] == "'@k" and rows[2][-1] == '"@SUM(1)"'  # a JSON string result: quoted already
    assert rows[3][5] == '\'=HYPERLINK("x")'
    assert rows[4][6] == "'+1+1" and rows[4][9] == "'-2+3" and rows[4][10:12] == ["\\ud800", "true"]
