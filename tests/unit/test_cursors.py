"""The cursor codec: every position round-trips, and no text a client can send decodes to anything but a
position of the right list or an InvalidRequest naming the parameter."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.cursors import (
    CURSOR_PATTERN,
    FEED_CURSOR,
    FILE_CURSOR,
    ITEM_CURSOR,
    JOB_SORT_KEYS,
    JOB_SORTS,
    MAX_BIGINT,
    CursorCodec,
    FieldType,
    Key,
    all_codecs,
    job_cursor,
)
from batchyard.errors import InvalidRequest

IDS = st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True)
VALUES: dict[FieldType, st.SearchStrategy[Key]] = {
    "int": st.integers(-MAX_BIGINT, MAX_BIGINT),
    "seq": st.integers(0, MAX_BIGINT),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "id": IDS,
}


@st.composite
def positions(draw: st.DrawFn) -> tuple[CursorCodec, tuple[Key, ...]]:
    codec = draw(st.sampled_from(list(all_codecs())))
    return codec, tuple(draw(VALUES[field]) for field in codec.fields)


@given(positions())
def test_every_position_round_trips(case: tuple[CursorCodec, tuple[Key, ...]]) -> None:
    codec, position = case
    cursor = codec.encode(*position)
    assert re.fullmatch(CURSOR_PATTERN, cursor) and re.fullmatch(codec.pattern, cursor), "patterns admit it"
    decoded = codec.decode(cursor)
    assert decoded == position
    assert [type(v) for v in decoded] == [type(v) for v in position]


@given(positions(), st.sampled_from(list(all_codecs())))
def test_a_cursor_of_another_list_is_refused(case: tuple[CursorCodec, tuple[Key, ...]], other: CursorCodec) -> None:
    codec, position = case
    if other.list_name == codec.list_name:
        return
    with pytest.raises(InvalidRequest) as raised:
        other.decode(codec.encode(*position))
    assert raised.value.param == "cursor"


@given(st.text(max_size=600), st.sampled_from(list(all_codecs())))
def test_any_text_decodes_to_a_position_or_a_client_error(text: str, codec: CursorCodec) -> None:
    try:
        position = codec.decode(text, param="after")
    except InvalidRequest as exc:
        assert exc.param == "after" and exc.status == 400
    else:
        assert codec.encode(*position) == text or codec.legacy is not None
        assert codec.decode(codec.encode(*position)) == position


@given(st.integers(0, 16**15 - 1))
def test_the_item_list_still_reads_its_old_cursors(seq: int) -> None:
    old = f"s{seq:x}"
    assert re.fullmatch(ITEM_CURSOR.pattern, old)
    assert ITEM_CURSOR.decode(old) == (seq,)
    for bad in ("s", "s" + "f" * 16, "s-1", "S10", f"s{seq:X}g"):
        with pytest.raises(InvalidRequest):
            ITEM_CURSOR.decode(bad)


def _forge(payload: object) -> str:
    return "1" + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(), st.lists, max_leaves=8))
def test_any_json_inside_a_well_formed_cursor_is_checked(payload: object) -> None:
    cursor = _forge(["feed", payload, "job_x"])
    try:
        position = FEED_CURSOR.decode(cursor)
    except InvalidRequest:
        return
    assert isinstance(position[0], float)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "1",
        "1=",
        "2" + _forge(["items", 1])[1:],  # a version this code does not know
        _forge(["items", 1]) + "=",
        _forge(["items", -1]),
        _forge(["items", 2**63]),
        _forge(["items", True]),
        _forge(["items", 1.0]),
        _forge(["items", "1"]),
        _forge(["items", 1, 2]),
        _forge(["items"]),
        _forge(["files", 1.0, "file_a\u0000"]),
        _forge(["files", 1.0, "\ud800"]),
        _forge(["files", 1, "file_a"]),
        _forge(["files", "NaN", "file_a"]),
        "1" + base64.urlsafe_b64encode(b'["files",NaN,"file_a"]').decode().rstrip("="),
        "1" + base64.urlsafe_b64encode(b'["files",1e999,"file_a"]').decode().rstrip("="),
        "1" + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
        "1" + "[" * 300,
    ],
)
def test_hand_made_cursors_are_refused(cursor: str) -> None:
    for codec in (ITEM_CURSOR, FILE_CURSOR):
        with pytest.raises(InvalidRequest):
            codec.decode(cursor)


def test_one_text_per_position() -> None:
    cursor = ITEM_CURSOR.encode(5)
    flipped = cursor[:-1] + chr(ord(cursor[-1]) + 1)  # the same bytes, other unused low bits
    with pytest.raises(InvalidRequest):
        ITEM_CURSOR.decode(flipped)


def test_a_job_cursor_names_its_sort_order() -> None:
    cursor = job_cursor("-priority").encode(3, "job_abc")
    assert job_cursor("-priority").decode(cursor) == (3, "job_abc")
    with pytest.raises(InvalidRequest, match="different sort order"):
        job_cursor("total").decode(cursor)
    with pytest.raises(InvalidRequest):
        job_cursor("-created_at").decode(job_cursor("-priority").encode(3, "job_abc"))


def test_every_sort_has_a_codec_of_its_type() -> None:
    assert set(JOB_SORTS) == {s for k in JOB_SORT_KEYS for s in (k, "-" + k)}
    for sort in JOB_SORTS:
        assert job_cursor(sort).fields == (JOB_SORT_KEYS[sort.lstrip("-")].type, "id")


def test_encode_refuses_what_decode_would() -> None:
    for bad in [(float("nan"), "job_a"), (1.0, "job a"), (1, "job_a")]:
        with pytest.raises(ValueError):
            FEED_CURSOR.encode(*bad)
