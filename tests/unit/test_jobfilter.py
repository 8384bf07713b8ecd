"""Job filter statuses: names and groups, repeated or comma-separated; the OpenAPI pattern agrees with the parser."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.jobfilter import STATUS_GROUPS, STATUS_PATTERN, STATUS_WORDS, id_prefix_range, parse_statuses
from batchyard.core.lifecycle import JobStatus
from batchyard.errors import InvalidRequest

ORDER = [s.value for s in JobStatus]


def _meaning(word: str) -> set[str]:
    return {s.value for s in STATUS_GROUPS[word]} if word in STATUS_GROUPS else {word}


def test_groups() -> None:
    assert parse_statuses(["active"]) == ("queued", "running", "paused", "finalizing", "cancelling")
    assert parse_statuses(["finished"]) == ("completed", "failed", "cancelled", "expired")
    assert parse_statuses(["active", "finished"]) == tuple(ORDER)
    assert parse_statuses(None) == parse_statuses([]) == ()


@given(st.lists(st.lists(st.sampled_from(STATUS_WORDS), min_size=1, max_size=4), max_size=4))
def test_any_mix_of_repeats_and_commas_means_the_union(groups: list[list[str]]) -> None:
    values = [",".join(words) for words in groups]
    expected = set().union(*(_meaning(w) for words in groups for w in words)) if groups else set()
    got = parse_statuses(values)
    assert set(got) == expected
    assert list(got) == [s for s in ORDER if s in expected]  # each once, in the lifecycle's order
    assert all(re.fullmatch(STATUS_PATTERN, v) for v in values)  # what the API's schema promises to accept


def test_python_callers_may_use_any_case_and_blanks() -> None:
    assert parse_statuses([" Running , QUEUED"]) == ("queued", "running")


@pytest.mark.parametrize("value", ["runing", "running,", ",", "", "queued;running", "all", "done"])
def test_anything_else_is_refused_naming_the_word(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_statuses([value], param="status")
    assert caught.value.param == "status"
    assert "unknown status" in caught.value.message and "active" in caught.value.message
    assert not re.fullmatch(STATUS_PATTERN, value)


@given(st.one_of(st.text(max_size=30), st.lists(st.sampled_from([*STATUS_WORDS, " ", "A", "x"])).map(",".join)))
def test_the_pattern_accepts_what_parses_once_lower_cased_without_blanks(value: str) -> None:
    normalized = ",".join(word.strip().lower() for word in value.split(","))
    try:
        parsed = parse_statuses([value])
    except InvalidRequest:
        assert not re.fullmatch(STATUS_PATTERN, normalized)
        return
    assert re.fullmatch(STATUS_PATTERN, normalized) and parse_statuses([normalized]) == parsed
    assert bool(re.fullmatch(STATUS_PATTERN, value)) == (value == normalized)


HEX_IDS = st.text("0123456789abcdef", min_size=20, max_size=20).map(lambda digits: f"job_{digits}")


@given(HEX_IDS, HEX_IDS, st.integers(1, 20))
def test_an_id_prefix_is_a_range_holding_exactly_the_ids_it_starts(job_id: str, other: str, digits: int) -> None:
    prefix = job_id[: 4 + digits]
    bounds = id_prefix_range(prefix)
    assert bounds is not None
    low, high = bounds
    for candidate in (job_id, other):
        inside = low <= candidate and (high is None or candidate < high)
        assert inside == candidate.startswith(prefix), (prefix, candidate, bounds)


@pytest.mark.parametrize("text", ["job_", "job_01G", "JOB_01", "job_01a2 ", "01a2", "job_" + "0" * 21, "march"])
def test_other_searches_are_not_id_ranges(text: str) -> None:
    assert id_prefix_range(text) is None
