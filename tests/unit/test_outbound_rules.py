"""The pure rules of outbound requests: retry verdicts, Retry-After, backoff, token buckets, upstream routes."""

from __future__ import annotations

import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchyard.core.ratelimit import TokenBucket
from batchyard.core.retries import classify_status, parse_retry_after, retry_wait
from batchyard.errors import ConfigError
from batchyard.outbound.upstreams import Price, Secret, Upstream, build_routes, display_url

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "success"), (201, "success"), (299, "success"), (400, "final"), (401, "final"), (403, "final"),
     (404, "final"), (422, "final"), (408, "retry"), (409, "retry"), (429, "retry"), (500, "retry"),
     (502, "retry"), (503, "retry"), (504, "retry"), (301, "final"), (304, "final")],
)  # fmt: skip
def test_which_answers_are_retried(status: int, verdict: str) -> None:
    assert classify_status(status) == verdict


def test_retry_after_in_seconds_milliseconds_and_dates() -> None:
    assert parse_retry_after({"retry-after": "3"}, NOW) == 3.0
    assert parse_retry_after({"Retry-After": "1.5"}, NOW) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, NOW) == 0.25  # the precise one wins
    assert parse_retry_after({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, NOW) == pytest.approx(30)
    assert parse_retry_after({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, NOW) == 0.0
    assert parse_retry_after({"retry-after": "-4"}, NOW) == 0.0
    for unreadable in ("soon", "", "nan", "inf"):
        assert parse_retry_after({"retry-after": unreadable}, NOW) is None
    assert parse_retry_after({}, NOW) is None


@given(st.integers(1, 40), st.one_of(st.none(), st.floats(0, 1000)))
def test_retry_waits_double_up_to_a_cap_and_a_longer_retry_after_wins(retry: int, retry_after: float | None) -> None:
    wait = retry_wait(retry, retry_after, base_seconds=0.5, cap_seconds=8.0, rng=random.Random(retry))
    ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
    if retry_after is not None and retry_after > ceiling:
        assert wait == retry_after
    else:
        assert ceiling / 2 <= wait <= max(ceiling, retry_after or 0)


def test_retry_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        retry_wait(0)


def test_a_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(60, now=0.0)  # one a second, a burst of 60
    assert all(bucket.reserve(1, 0.0) == 0 for _ in range(60))
    assert bucket.reserve(1, 0.0) == pytest.approx(1.0)
    assert bucket.reserve(1, 0.0) == pytest.approx(2.0)  # callers queue up in order
    assert bucket.reserve(1, 10.0) == pytest.approx(0.0)  # ten seconds refilled ten


def test_a_token_bucket_refunds_an_overestimate_and_never_refuses_a_big_request() -> None:
    bucket = TokenBucket(1000, now=0.0)
    assert bucket.reserve(900, 0.0) == 0
    bucket.refund(800, 0.0)  # it used 100
    assert bucket.level(0.0) == pytest.approx(900)
    assert bucket.reserve(5000, 0.0) == pytest.approx(1000 / (1000 / 60) - 900 / (1000 / 60))  # a burst's worth
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, now=0.0)


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 50)), max_size=30))
def test_a_token_bucket_never_holds_more_than_a_minute(steps: list[tuple[float, float]]) -> None:
    bucket = TokenBucket(120, now=0.0)
    now = 0.0
    for advance, amount in steps:
        now += advance
        bucket.reserve(amount, now)
        bucket.refund(amount / 2, now)
        assert bucket.level(now) <= 120


def test_upstream_urls_join_without_repeating_v1() -> None:
    upstream = Upstream("default", "http://h:8000/v1")
    assert upstream.url_for("/v1/chat/completions") == "http://h:8000/v1/chat/completions"
    assert upstream.url_for("/chat/completions") == "http://h:8000/v1/chat/completions"
    assert Upstream("g", "https://gw/openai/v1/").url_for("/v1/embeddings") == "https://gw/openai/v1/embeddings"
    assert Upstream("o", "http://h/api").url_for("/v1/embeddings") == "http://h/api/v1/embeddings"


def test_routes_pick_exact_then_longest_pattern_then_the_default() -> None:
    routes = build_routes(
        default_url="http://127.0.0.1:8001",
        default_key="sk-default",
        default_concurrency=64,
        document={
            "upstreams": {
                "gpu": {"base_url": "http://10.0.0.5:8000/v1", "api_key_env": "GPU_KEY", "max_concurrency": 8,
                        "requests_per_minute": 600, "tokens_per_minute": 100000, "timeout_seconds": 30},
            },
            "models": {
                "llama-3-8b": {"upstream": "gpu", "input_price_per_million": 0.1, "output_price_per_million": 0.2},
                "llama-*": {"upstream": "gpu"},
                "llama-3-*": {"input_price_per_million": 1.0},
            },
        },
        environ={"GPU_KEY": "sk-gpu"},
    )  # fmt: skip
    exact = routes.route("llama-3-8b")
    assert exact is not None and exact.upstream.name == "gpu" and exact.price == Price(0.1, 0.2)
    assert exact.upstream.api_key == Secret("sk-gpu") and exact.upstream.max_concurrency == 8
    assert exact.upstream.requests_per_minute == 600 and exact.upstream.timeout_seconds == 30
    longest = routes.route("llama-3-70b")
    assert longest is not None and longest.upstream.name == "default" and longest.price == Price(1.0, 0.0)
    other = routes.route("mistral")
    assert other is not None and other.upstream.base_url == "http://127.0.0.1:8001/v1" and other.price is None
    assert other.upstream.max_concurrency == 64
    assert routes.route(None) is not None
    assert Price(2.0, 8.0).cost(1_000_000, 500_000) == pytest.approx(6.0)


def test_keys_never_show_themselves() -> None:
    routes = build_routes(default_url="http://h/v1", default_key="sk-very-secret", default_concurrency=4)
    upstream = routes.upstreams["default"]
    assert "sk-very-secret" not in repr(upstream) and "sk-very-secret" not in str(upstream.api_key)
    assert upstream.api_key is not None and upstream.api_key.reveal() == "sk-very-secret"
    assert display_url("http://user:pw@h:1/v1") == "http://h:1/v1"


def test_no_upstream_routes_nothing() -> None:
    routes = build_routes(default_url=None, default_key=None, default_concurrency=4)
    assert routes.route("any") is None


@pytest.mark.parametrize(
    ("document", "phrase"),
    [
        ({"upstream": {}}, "unknown section"),
        ({"upstreams": {"a": {"base_url": "ftp://x"}}}, "not an http(s) URL"),
        ({"upstreams": {"a": {}}}, "needs base_url"),
        ({"upstreams": {"a": {"base_url": "http://x/v1", "api_key_env": "NOPE"}}}, "not set in the environment"),
        ({"upstreams": {"a": {"base_url": "http://x/v1", "api_key": "k", "api_key_env": "K"}}}, "not both"),
        ({"upstreams": {"a": {"base_url": "http://x/v1", "max_concurrency": 0}}}, "max_concurrency"),
        ({"upstreams": {"a": {"base_url": "http://x/v1", "requests_per_minute": -1}}}, "requests_per_minute"),
        ({"upstreams": {"a": {"base_url": "http://x/v1", "colour": "red"}}}, "unknown key"),
        ({"models": {"m": {"upstream": "nowhere"}}}, "not defined"),
        ({"models": {"m": {"input_price_per_million": "cheap"}}}, "must be a number"),
        ({"models": {"m": {"price": 1}}}, "unknown key"),
        ({"models": {"m": 3}}, "must be a table"),
    ],
)
def test_a_bad_routes_file_says_where(document: dict[str, object], phrase: str) -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.toml") as caught:
        build_routes(
            default_url="http://h/v1", default_key=None, default_concurrency=4, document=document,
            source="upstreams.toml", environ={},
        )  # fmt: skip
    assert phrase in caught.value.message
