"""The streaming item reader: every rule for JSONL, CSV and Python iterables, chunking and bounded memory."""

from __future__ import annotations

import csv
import io
import json
import math
import tracemalloc
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.data.ingest import MAX_KEY_CHARS, ItemReader, ParsedItem, detect_format
from batchyard.errors import InputInvalid, InputProblem

BOM = b"\xef\xbb\xbf"


class GeneratedStream(io.RawIOBase):
    """A raw binary stream over lazily generated pieces: huge inputs without disk or memory, and a way to see
    how far the reader has read."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        super().__init__()
        self._pieces = iter(pieces)
        self._pending = memoryview(b"")
        self.pieces_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._pending = memoryview(piece)
            self.pieces_read += 1
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_items(source: Any, size: int = 1000, **options: Any) -> list[ParsedItem]:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    reader = ItemReader(source, **options)
    return [item for chunk in reader.chunks(size) for item in chunk]


def read_problems(source: Any, **options: Any) -> list[InputProblem]:
    with pytest.raises(InputInvalid) as caught:
        read_items(source, **options)
    return caught.value.problems


def codes(source: Any, **options: Any) -> list[tuple[int, str]]:
    return [(problem.line, problem.code) for problem in read_problems(source, **options)]


def jsonl(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


# Format detection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("items.jsonl", "jsonl"),
        ("items.ndjson", "jsonl"),
        ("items.jsonlines", "jsonl"),
        ("/tmp/dir.csv/ITEMS.JSONL", "jsonl"),
        ("items.csv", "csv"),
        ("Items.CSV", "csv"),
        ("items.json", None),
        ("items.txt", None),
        ("items", None),
        ("items.csv.gz", None),
    ],
)
def test_detect_format_goes_by_extension(name: str, expected: str | None) -> None:
    assert detect_format(name) == expected


# JSONL ------------------------------------------------------------------------------------------------------


def test_jsonl_items_carry_seq_line_key_and_original_payload() -> None:
    data = b'{"custom_id": "a", "x": 1}\n  {"key": "b"}  \n{"x": 3}\n{"custom_id": 42, "key": "ignored"}\n'
    items = read_items(data)
    assert items == [
        ParsedItem(0, 1, "a", '{"custom_id": "a", "x": 1}'),
        ParsedItem(1, 2, "b", '{"key": "b"}'),
        ParsedItem(2, 3, "3", '{"x": 3}'),
        ParsedItem(3, 4, "42", '{"custom_id": 42, "key": "ignored"}'),
    ]


def test_jsonl_bom_crlf_and_blank_lines_are_tolerated_and_still_counted() -> None:
    data = BOM + b'\r\n{"custom_id": "a"}\r\n \t \r\n\r\n{"custom_id": "b"}\r\n\n{"custom_id": "c"}'
    items = read_items(data)
    assert [(item.line, item.key, item.payload) for item in items] == [
        (2, "a", '{"custom_id": "a"}'),
        (5, "b", '{"custom_id": "b"}'),
        (7, "c", '{"custom_id": "c"}'),
    ]


def test_jsonl_bom_directly_before_the_first_object() -> None:
    assert [item.line for item in read_items(BOM + b'{"a": 1}\n{"a": 2}\n')] == [1, 2]


def test_bom_is_only_ignored_at_the_very_start() -> None:
    assert codes(b'{"a": 1}\n' + BOM + b'{"a": 2}\n') == [(2, "invalid_json")]


def test_invalid_utf8_names_the_byte_offset_in_the_line() -> None:
    problems = read_problems(b'{"a": 1}\n  {"t": "caf\xe9"}\n')
    assert [(p.line, p.code) for p in problems] == [(2, "invalid_utf8")]
    assert "byte 0xe9 at byte offset 12" in problems[0].message
    assert "UTF-8" in problems[0].message


def test_invalid_json_gives_json_message_with_column() -> None:
    problems = read_problems(jsonl('{"custom_id": "a"}', '{"custom_id": "b" "x": 1}'))
    assert [(p.line, p.code) for p in problems] == [(2, "invalid_json")]
    assert problems[0].message == (
        "invalid JSON: Expecting ',' delimiter at column 19; each line must be one JSON object"
    )


def test_invalid_json_column_counts_leading_whitespace() -> None:
    (problem,) = read_problems(b'   {"a" 1}\n')
    assert "Expecting ':' delimiter at column 9" in problem.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_not_json(constant: str) -> None:
    (problem,) = read_problems(jsonl(f'{{"x": {constant}}}'))
    assert problem.code == "invalid_json"
    assert f"{constant} is not valid JSON" in problem.message


def test_extra_data_after_the_object_is_invalid() -> None:
    (problem,) = read_problems(jsonl('{"a": 1}  {"b": 2}'))
    assert (problem.code, problem.line) == ("invalid_json", 1)
    assert "Extra data at column 11" in problem.message


def test_truncated_last_line_without_newline_is_invalid_json() -> None:
    assert codes(b'{"a": 1}\n{"a": 2}\n{"a": ') == [(3, "invalid_json")]


def test_deeply_nested_json_is_a_problem_not_a_crash() -> None:
    (problem,) = read_problems(b"[" * 100_000 + b"\n", format="jsonl")
    assert problem.code == "invalid_json"


def test_integer_past_the_digit_limit_is_a_problem() -> None:
    (problem,) = read_problems(b'{"n": ' + b"9" * 5000 + b"}\n")
    assert problem.code == "invalid_json"
    assert "too many digits" in problem.message


@pytest.mark.parametrize(
    ("line", "described"),
    [
        ("[1, 2]", "a JSON array"),
        ('"text"', "a JSON string"),
        ("3.5", "a JSON number"),
        ("null", "JSON null"),
        ("true", "a JSON boolean (true)"),
    ],
)
def test_non_object_lines_say_what_they_are(line: str, described: str) -> None:
    problems = read_problems(jsonl('{"a": 1}', line))
    assert [(p.line, p.code) for p in problems] == [(2, "not_an_object")]
    assert f"got {described}" in problems[0].message


# Keys -------------------------------------------------------------------------------------------------------


def test_integer_keys_become_strings() -> None:
    items = read_items(jsonl('{"custom_id": 7}', '{"key": -3}', '{"custom_id": 0}'))
    assert [item.key for item in items] == ["7", "-3", "0"]


@pytest.mark.parametrize(
    ("value", "described"),
    [
        ("true", "a JSON boolean (true)"),
        ("null", "JSON null"),
        ("1.0", "a JSON number"),
        ('["a"]', "a JSON array"),
        ('{"a": 1}', "a JSON object"),
    ],
)
def test_keys_of_other_types_are_invalid(value: str, described: str) -> None:
    (problem,) = read_problems(jsonl(f'{{"custom_id": {value}}}'))
    assert (problem.line, problem.code) == (1, "invalid_key")
    assert problem.message == f"custom_id must be a non-empty string or an integer, got {described}"


def test_empty_string_key_is_invalid() -> None:
    (problem,) = read_problems(jsonl('{"x": 1}', '{"key": ""}'))
    assert (problem.line, problem.code) == (2, "invalid_key")
    assert "key is an empty string" in problem.message


def test_key_length_limit() -> None:
    longest = "k" * MAX_KEY_CHARS
    assert read_items(jsonl(json.dumps({"custom_id": longest})))[0].key == longest
    (problem,) = read_problems(jsonl(json.dumps({"custom_id": longest + "k"})))
    assert (problem.line, problem.code) == (1, "key_too_long")
    assert "513 characters" in problem.message and "512" in problem.message


def test_custom_id_wins_over_key_even_when_invalid() -> None:
    assert codes(jsonl('{"custom_id": null, "key": "fine"}')) == [(1, "invalid_key")]


def test_duplicate_key_names_the_key_and_its_first_line() -> None:
    problems = read_problems(jsonl('{"custom_id": "a"}', '{"custom_id": "b"}', "", '{"custom_id": "a"}'))
    assert [(p.line, p.code) for p in problems] == [(4, "duplicate_key")]
    assert problems[0].message.startswith('duplicate custom_id "a", first used on line 1')


def test_integer_and_string_keys_with_the_same_text_collide() -> None:
    assert codes(jsonl('{"custom_id": 5}', '{"key": "5"}')) == [(2, "duplicate_key")]


def test_default_line_number_key_collides_with_an_explicit_one() -> None:
    assert codes(jsonl('{"custom_id": "2"}', '{"x": 1}')) == [(2, "duplicate_key")]


def test_every_duplicate_is_reported_against_the_first_occurrence() -> None:
    problems = read_problems(jsonl('{"key": "a"}', '{"key": "a"}', '{"key": "a"}'))
    assert [(p.line, p.code) for p in problems] == [(2, "duplicate_key"), (3, "duplicate_key")]
    assert all("first used on line 1" in p.message for p in problems)


# Line length ------------------------------------------------------------------------------------------------


def object_of_size(size: int) -> bytes:
    """A JSON object line (no terminator) of exactly ``size`` bytes."""
    line = b'{"t": "' + b"x" * (size - 9) + b'"}'
    assert len(line) == size
    return line


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_line_of_exactly_the_limit_is_accepted(ending: bytes) -> None:
    assert len(read_items(object_of_size(64) + ending, max_line_bytes=64)) == 1


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_line_over_the_limit_is_reported_with_its_size(ending: bytes) -> None:
    data = b'{"a": 1}\n' + object_of_size(65) + ending
    problems = read_problems(data, max_line_bytes=64)
    assert [(p.line, p.code) for p in problems] == [(2, "line_too_long")]
    assert problems[0].message.startswith("line is 65 bytes, over the limit of 64 bytes")


def test_rest_of_a_long_line_is_skipped_and_counting_resumes() -> None:
    data = object_of_size(300_000) + b"\n" + b'{"a": [1, 2}\n' + object_of_size(101) + b"\r\n{}\n"
    problems = read_problems(data, max_line_bytes=100)
    assert [(p.line, p.code) for p in problems] == [
        (1, "line_too_long"),
        (2, "invalid_json"),
        (3, "line_too_long"),
    ]
    assert "300,000 bytes" in problems[0].message
    assert "line is 101 bytes" in problems[2].message  # the CR is not part of the line


def test_long_line_is_skipped_without_buffering_it() -> None:
    piece = b"x" * 65_536
    pieces = [b'{"a": 1}\n{"t": "', *([piece] * 320), b'"}\n{"b": 2}\n']  # a 20 MiB line
    tracemalloc.start()
    try:
        problems = read_problems(GeneratedStream(pieces), max_line_bytes=1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(p.line, p.code) for p in problems] == [(2, "line_too_long")]
    assert peak < 2 * 1024 * 1024


def test_whitespace_only_line_over_the_limit_is_too_long() -> None:
    assert codes(b" " * 100 + b"\n{}\n", max_line_bytes=10) == [(1, "line_too_long")]


# Empty input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n", b"  \n\t\r\n\n", BOM, BOM + b"\r\n"])
def test_input_without_items_is_empty_input(data: bytes) -> None:
    with pytest.raises(InputInvalid) as caught:
        read_items(data, source_name="upload.jsonl")
    assert caught.value.total == 1
    (problem,) = caught.value.problems
    assert (problem.line, problem.code) == (0, "empty_input")
    assert problem.message.startswith("upload.jsonl contains no items")


def test_empty_python_iterable_is_empty_input() -> None:
    assert codes([]) == [(0, "empty_input")]


def test_input_with_only_bad_lines_reports_those_not_empty_input() -> None:
    assert codes(jsonl("[]"), format="jsonl") == [(1, "not_an_object")]


# Problems: collection, cap, error ---------------------------------------------------------------------------


def test_reading_continues_after_a_problem_to_collect_every_problem() -> None:
    lines = [f'{{"key": "k{i}"}}' if i % 3 else "[]" for i in range(30)]
    problems = read_problems(jsonl(*lines), format="jsonl")
    assert [p.line for p in problems] == list(range(1, 31, 3))


def test_only_max_problems_are_kept_but_all_are_counted() -> None:
    reader = ItemReader(io.BytesIO(jsonl(*["[]"] * 250)), format="jsonl", max_problems=7, source_name="batch.jsonl")
    with pytest.raises(InputInvalid) as caught:
        list(reader.chunks(10))
    error = caught.value
    assert [p.line for p in error.problems] == [1, 2, 3, 4, 5, 6, 7]
    assert error.total == reader.total_problems == 250
    assert reader.problems == error.problems
    assert error.source == "batch.jsonl"
    assert str(error).startswith("batch.jsonl has 250 problems: line 1:")
    assert error.to_dict()["total"] == 250


def test_zero_max_problems_keeps_none_but_still_fails() -> None:
    reader = ItemReader(io.BytesIO(jsonl("[]", "{}")), format="jsonl", max_problems=0)
    with pytest.raises(InputInvalid) as caught:
        list(reader.chunks(10))
    assert (caught.value.problems, caught.value.total) == ([], 1)


def test_no_items_are_yielded_after_the_first_problem() -> None:
    lines = [f'{{"key": "k{i}"}}' for i in range(10)]
    lines[5] = "not json"
    reader = ItemReader(io.BytesIO(jsonl(*lines)))
    chunks = reader.chunks(2)
    yielded = [next(chunks), next(chunks)]  # lines 1-4, all before the problem
    with pytest.raises(InputInvalid):
        yielded.extend(chunks)
    assert [[item.line for item in chunk] for chunk in yielded] == [[1, 2], [3, 4]]
    assert reader.count == 9  # valid items are still counted after the problem


def test_count_tracks_valid_items_as_they_are_read() -> None:
    reader = ItemReader(io.BytesIO(jsonl(*[f'{{"n": {i}}}' for i in range(5)])))
    counts = [reader.count for _ in reader.chunks(2)]
    assert counts == [2, 4, 5]


# Chunking and reader use ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1, [1] * 7), (2, [2, 2, 2, 1]), (3, [3, 3, 1]), (7, [7]), (8, [7]), (1000, [7])],
)
def test_chunks_hold_at_most_size_items(size: int, expected: list[int]) -> None:
    reader = ItemReader(io.BytesIO(jsonl(*[f'{{"n": {i}}}' for i in range(7)])))
    chunks = list(reader.chunks(size))
    assert [len(chunk) for chunk in chunks] == expected
    assert [item.seq for chunk in chunks for item in chunk] == list(range(7))


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ItemReader([{}]).chunks(0)


def test_a_reader_reads_its_source_once() -> None:
    reader = ItemReader([{"a": 1}])
    list(reader.chunks(10))
    with pytest.raises(RuntimeError, match="once"):
        reader.chunks(10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "json"}, "format"),
        ({"max_line_bytes": 0}, "max_line_bytes"),
        ({"max_problems": -1}, "max_problems"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ItemReader([{}], **options)


# Sources ----------------------------------------------------------------------------------------------------


def test_path_source_by_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(jsonl('{"custom_id": "a"}'))
    assert [item.key for item in read_items(path)] == ["a"]
    assert [item.key for item in read_items(str(path))] == ["a"]


def test_path_source_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"[]\n")
    with pytest.raises(InputInvalid) as caught:
        read_items(path)
    assert caught.value.source == str(path)


def test_extension_decides_over_content(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(b'{"a": 1}\n')  # a one-column CSV whose header is {"a": 1}
    assert codes(path) == [(0, "empty_input")]


def test_format_option_decides_over_extension(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(jsonl('{"custom_id": "a"}'))
    assert [item.key for item in read_items(path, format="jsonl")] == ["a"]


@pytest.mark.parametrize(
    ("data", "keys"),
    [
        (b'\n  {"custom_id": "a"}\n', ["a"]),
        (BOM + b'{"custom_id": "a"}\n', ["a"]),
        (b"custom_id,x\nb,1\n", ["b"]),
        (BOM + b"\r\n\r\ncustom_id,x\r\nc,1\r\n", ["c"]),
    ],
)
def test_format_is_sniffed_from_the_first_non_blank_byte(tmp_path: Path, data: bytes, keys: list[str]) -> None:
    path = tmp_path / "items.txt"
    path.write_bytes(data)
    assert [item.key for item in read_items(path)] == keys
    assert [item.key for item in read_items(io.BytesIO(data))] == keys


def test_unbuffered_file_is_read_and_left_open(tmp_path: Path) -> None:
    path = tmp_path / "items.bin"
    path.write_bytes(jsonl('{"custom_id": "a"}', '{"custom_id": "b"}'))
    with open(path, "rb", buffering=0) as raw:
        reader = ItemReader(raw)
        assert [item.key for chunk in reader.chunks(1) for item in chunk] == ["a", "b"]
        assert not raw.closed


def test_binary_stream_is_named_by_its_name_or_input(tmp_path: Path) -> None:
    path = tmp_path / "named.jsonl"
    path.write_bytes(b"[]\n")
    with open(path, "rb") as stream, pytest.raises(InputInvalid) as caught:
        read_items(stream)
    assert caught.value.source == str(path)
    with pytest.raises(InputInvalid) as caught:
        read_items(b"[]\n")
    assert caught.value.source == "input"


@pytest.mark.parametrize("source", [io.StringIO("{}"), b"{}", bytearray(b"{}"), {"custom_id": "a"}])
def test_sources_that_are_mistakes_are_rejected(source: Any) -> None:
    with pytest.raises(TypeError):
        ItemReader(source)


# CSV --------------------------------------------------------------------------------------------------------


def test_csv_rows_become_objects_of_strings() -> None:
    items = read_items(b'custom_id,text,n\na,hello,1\nb,"x, ""y""",\n', format="csv")
    assert [(item.line, item.key) for item in items] == [(2, "a"), (3, "b")]
    assert [json.loads(item.payload) for item in items] == [
        {"custom_id": "a", "text": "hello", "n": "1"},
        {"custom_id": "b", "text": 'x, "y"', "n": ""},
    ]


@pytest.mark.parametrize(
    ("header", "keys"),
    [(b"custom_id,key,t", ["c1", "c2"]), (b"t,key,x", ["k1", "k2"]), (b"t,x,y", ["2", "3"])],
)
def test_csv_key_column_custom_id_then_key_then_line(header: bytes, keys: list[str]) -> None:
    assert [item.key for item in read_items(header + b"\nc1,k1,t\nc2,k2,t\n")] == keys


def test_csv_multi_line_field_keeps_record_start_lines() -> None:
    data = b'custom_id,text\na,"one\ntwo\n\nfour"\nb,plain\nc\n'
    problems = read_problems(data)
    assert [(p.line, p.code) for p in problems] == [(7, "wrong_field_count")]
    items = read_items(data.removesuffix(b"c\n"))
    assert [(item.line, item.key) for item in items] == [(2, "a"), (6, "b")]
    assert json.loads(items[0].payload)["text"] == "one\ntwo\n\nfour"


def test_csv_bom_crlf_and_blank_lines() -> None:
    items = read_items(BOM + b'\r\ncustom_id,text\r\n\r\na,"x\r\ny"\r\n   \r\nb,z\r\n')
    assert [(item.line, item.key) for item in items] == [(4, "a"), (7, "b")]
    assert json.loads(items[0].payload) == {"custom_id": "a", "text": "x\r\ny"}


def test_csv_wrong_field_count_says_expected_and_got() -> None:
    problems = read_problems(b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n")
    assert [(p.line, p.code) for p in problems] == [(3, "wrong_field_count"), (4, "wrong_field_count")]
    assert problems[0].message.startswith("expected 3 fields (as in the header), got 2")
    assert "got 4" in problems[1].message


def test_csv_header_problems_name_the_column() -> None:
    problems = read_problems(b"custom_id,text,,text, \na,1,2,3,4\n")
    assert [(p.line, p.code) for p in problems] == [(1, "invalid_header")] * 3
    assert "column 3" in problems[0].message and "no name" in problems[0].message
    assert 'column 4 of the header repeats the name "text" (already column 2)' in problems[1].message
    assert "column 5" in problems[2].message


def test_csv_header_only_is_empty_input() -> None:
    assert codes(b"custom_id,text\r\n\r\n") == [(0, "empty_input")]


def test_csv_bad_quoting_is_invalid_csv_and_reading_resumes() -> None:
    data = b'custom_id,text\na,"x"y\nb,ok\nc,"never closed\nd,1\n'
    assert codes(data) == [(2, "invalid_csv"), (4, "invalid_csv")]


def test_csv_invalid_utf8_and_long_lines() -> None:
    data = b"custom_id,text\na,caf\xc3\xa9\nb,caf\xe9\nc," + b"x" * 100 + b"\nd,1\n"
    problems = read_problems(data, max_line_bytes=50)
    assert [(p.line, p.code) for p in problems] == [(3, "invalid_utf8"), (4, "line_too_long")]
    assert "byte 0xe9 at byte offset 5" in problems[0].message


def test_csv_key_rules() -> None:
    data = b"custom_id,t\n,1\n" + b"k" * 513 + b",2\nz,3\nz,4\n"
    assert codes(data) == [(2, "invalid_key"), (3, "key_too_long"), (5, "duplicate_key")]


def test_csv_fields_larger_than_the_csv_module_default_are_fine() -> None:
    big = "x" * 200_000
    (item,) = read_items(f"custom_id,t\na,{big}\n".encode())
    assert json.loads(item.payload)["t"] == big


# Python iterables -------------------------------------------------------------------------------------------


def test_python_items_are_serialized_compactly() -> None:
    values: list[Any] = [{"custom_id": "a", "text": "café"}, [1, 2], "plain", 3.5, None, {"key": 9}]
    items = read_items(values)
    assert [(item.seq, item.line, item.key) for item in items] == [
        (0, 1, "a"),
        (1, 2, "2"),
        (2, 3, "3"),
        (3, 4, "4"),
        (4, 5, "5"),
        (5, 6, "9"),
    ]
    assert items[0].payload == '{"custom_id":"a","text":"café"}'


def test_python_items_that_cannot_be_json_are_reported_by_position() -> None:
    circular: list[Any] = []
    circular.append(circular)
    values: list[Any] = [{"a": 1}, {"t": object()}, math.nan, {"x": math.inf}, circular, {1, 2}, {"ok": True}]
    problems = read_problems(values)
    assert [(p.line, p.code) for p in problems] == [(n, "not_serializable") for n in (2, 3, 4, 5, 6)]
    assert problems[0].message.startswith("item 2 cannot be converted to JSON: Object of type object")


def test_python_key_rules_and_duplicates_by_position() -> None:
    values: list[Any] = [{"custom_id": True}, {"custom_id": "a"}, {"key": "a"}, {"custom_id": "k" * 513}]
    problems = read_problems(values)
    assert [(p.line, p.code) for p in problems] == [
        (1, "invalid_key"),
        (3, "duplicate_key"),
        (4, "key_too_long"),
    ]
    assert "first used on item 2" in problems[1].message
    assert read_problems(values, source_name="mine")[0].message == problems[0].message


def test_python_dict_subclasses_carry_keys() -> None:
    items = read_items([OrderedDict(custom_id="z"), defaultdict(int, key=4)])
    assert [item.key for item in items] == ["z", "4"]


def test_python_source_is_named_items() -> None:
    with pytest.raises(InputInvalid) as caught:
        read_items([math.nan])
    assert caught.value.source == "items"


def test_python_generator_is_consumed_lazily() -> None:
    produced = 0

    def values() -> Iterator[dict[str, int]]:
        nonlocal produced
        for n in range(10_000):
            produced += 1
            yield {"n": n}

    chunks = ItemReader(values()).chunks(100)
    first = next(chunks)
    assert len(first) == 100
    assert produced <= 101
    assert sum(len(chunk) for chunk in chunks) == 9_900


# Properties -------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.text(), json_values, max_size=5).map(
    lambda value: {k: v for k, v in value.items() if k not in ("custom_id", "key")}
)


@given(st.lists(objects, max_size=30))
def test_python_dicts_with_distinct_keys_round_trip(values: list[dict[str, Any]]) -> None:
    for position, value in enumerate(values):
        value["custom_id"] = f"id-{position}"
    if not values:
        return
    items = read_items(values, size=7)
    assert [item.seq for item in items] == list(range(len(values)))
    assert [item.line for item in items] == list(range(1, len(values) + 1))
    assert [item.key for item in items] == [value["custom_id"] for value in values]
    assert [json.loads(item.payload) for item in items] == values


@given(st.lists(objects, min_size=1, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans())
def test_jsonl_lines_round_trip(values: list[dict[str, Any]], ending: str, ascii_only: bool, bom: bool) -> None:
    text = "".join(json.dumps(value, ensure_ascii=ascii_only) + ending for value in values)
    data = (BOM if bom else b"") + text.encode()
    items = read_items(data, size=4)
    assert [item.seq for item in items] == list(range(len(values)))
    assert [item.key for item in items] == [str(line) for line in range(1, len(values) + 1)]
    assert [json.loads(item.payload) for item in items] == values


column_names = st.text(min_size=1).filter(lambda name: bool(name.strip()) and name not in ("custom_id", "key"))


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    names = draw(st.lists(column_names, min_size=2, max_size=4, unique=True))
    row = st.lists(st.text(), min_size=len(names), max_size=len(names))
    return names, draw(st.lists(row, min_size=1, max_size=10))


@given(csv_tables())
def test_csv_rows_round_trip(table: tuple[list[str], list[list[str]]]) -> None:
    names, rows = table
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(names)
    writer.writerows(rows)
    items = read_items(buffer.getvalue().encode(), format="csv")
    assert [json.loads(item.payload) for item in items] == [dict(zip(names, row, strict=True)) for row in rows]


# Streaming --------------------------------------------------------------------------------------------------


def numbered_lines(count: int, payload: bytes = b"") -> Iterator[bytes]:
    for n in range(count):
        yield b'{"custom_id": "item-%d", "text": "%s"}\n' % (n, payload)


def test_chunks_arrive_long_before_the_end_of_a_large_input() -> None:
    stream = GeneratedStream(numbered_lines(200_000))
    chunks = ItemReader(stream).chunks(1000)
    first = next(chunks)
    assert [item.key for item in first[:2]] == ["item-0", "item-1"]
    assert stream.pieces_read < 5_000  # one buffer's worth of lines, not the whole input
    assert len(first) + sum(len(chunk) for chunk in chunks) == 200_000


def test_memory_stays_bounded_for_a_large_input() -> None:
    # 5,000 lines of 4 KiB each: 20 MiB of input, while only one chunk's worth should ever be held.
    stream = GeneratedStream(numbered_lines(5_000, b"x" * 4096))
    reader = ItemReader(stream)
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in reader.chunks(100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 5_000
    assert peak < 3 * 1024 * 1024


@pytest.mark.parametrize("escaped", ["\\ud800", "a\\u0000b", "\\udfff-tail"])
def test_keys_the_database_cannot_store_are_line_numbered_problems(escaped: str) -> None:
    (problem,) = read_problems(jsonl('{"x": 1}', f'{{"custom_id": "{escaped}"}}'))
    assert (problem.line, problem.code) == (2, "invalid_key")
    assert "lone surrogate" in problem.message


def test_lone_surrogates_in_payloads_are_kept_storable() -> None:
    # From a file the line is kept as written (ASCII escapes); from Python the JSON is escaped to ASCII.
    [from_file] = read_items(jsonl('{"x": "\\ud800"}'))
    assert from_file.payload == '{"x": "\\ud800"}'
    [from_python] = read_items([{"x": "\ud800", "y": "é"}])
    from_python.payload.encode("utf-8")  # storable
    assert json.loads(from_python.payload) == {"x": "\ud800", "y": "é"}
    [plain] = read_items([{"y": "é"}])
    assert plain.payload == '{"y":"é"}'  # the common case keeps its UTF-8
