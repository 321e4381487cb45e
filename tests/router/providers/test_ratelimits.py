"""Rate-limit headers and bodies of all three providers, from real answer samples."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.providers.gemini_quota import parse_gemini_error
from router.providers.ratelimits import (
    LimitState,
    RateLimitBook,
    RateLimitSnapshot,
    parse_anthropic_headers,
    parse_duration,
    parse_openai_headers,
    parse_rate_limits,
    parse_retry_after,
    text_precision,
)

NOW = 1_700_000_000.0

# As api.openai.com sends them on a chat completion (community.openai.com sample).
OPENAI = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-limit-tokens": "160000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-remaining-tokens": "159976",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-reset-tokens": "6m0s",
}
ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:40Z",
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "39000",
    "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21Z",
    "anthropic-ratelimit-input-tokens-limit": "20000",
    "anthropic-ratelimit-input-tokens-remaining": "19000",
    "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:21Z",
    "retry-after": "20",
}
# A Gemini free-tier 429 (as reported in public issue threads).
GEMINI_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_input_token_count",
                        "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "250000",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
        ],
    }
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1.5s", 1.5),
        ("1h2m3s", 3723.0),
        ("9.816s", 9.816),
        ("7m12s", 432.0),
        ("2", 2.0),
        ("0.25", 0.25),
        ("500us", 0.0005),
        ("", None),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_headers() -> None:
    snap = parse_openai_headers(OPENAI, NOW)
    assert (snap.requests.limit, snap.requests.remaining) == (5000, 4999)
    assert snap.requests.reset_at == pytest.approx(NOW + 0.012)
    assert (snap.tokens.limit, snap.tokens.remaining, snap.tokens.reset_at) == (
        160000,
        159976,
        NOW + 360,
    )
    assert snap.retry_after is None and not snap.empty


def test_azure_headers_have_remaining_and_retry_after_ms() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "900",
        "retry-after": "6",
        "retry-after-ms": "5250",
    }
    snap = parse_rate_limits("azure", headers, now=NOW)
    assert snap.provider == "azure" and snap.requests.remaining == 0 and snap.requests.limit is None
    assert snap.retry_after == pytest.approx(5.25)


def test_anthropic_headers() -> None:
    snap = parse_anthropic_headers(ANTHROPIC, NOW)
    assert (snap.requests.limit, snap.requests.remaining) == (50, 0)
    assert snap.requests.reset_at == datetime(2023, 11, 14, 22, 13, 40, tzinfo=UTC).timestamp()
    assert snap.tokens.remaining == 39000
    assert snap.input_tokens is not None and snap.input_tokens.limit == 20000
    assert snap.output_tokens is None
    assert snap.retry_after == 20.0


def test_header_names_are_case_insensitive() -> None:
    snap = parse_rate_limits("openai", {k.upper(): v for k, v in OPENAI.items()}, now=NOW)
    assert snap.requests.limit == 5000


def test_gemini_429_body() -> None:
    snap = parse_gemini_error(GEMINI_429, NOW)
    assert snap.retry_after == 26.0 and not snap.per_day
    assert (
        snap.tokens.limit == 250000
        and snap.tokens.remaining == 0
        and snap.tokens.reset_at == NOW + 26
    )
    daily = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            "quotaValue": "200",
                        }
                    ],
                }
            ]
        }
    }
    snap = parse_rate_limits("gemini", {}, daily, NOW)
    assert snap.per_day and snap.day_requests is not None and snap.day_requests.limit == 200
    assert snap.requests.limit is None  # not a per-minute figure


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after(
        {"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, NOW
    ) == pytest.approx(datetime(2023, 11, 14, 22, 13, 40, tzinfo=UTC).timestamp() - NOW)
    assert parse_retry_after({"retry-after": "garbage"}, NOW) is None


def test_book_keeps_the_latest_non_empty_snapshot() -> None:
    book = RateLimitBook()
    older, newer = parse_openai_headers(OPENAI, NOW), parse_openai_headers(OPENAI, NOW + 1)
    book.record("k", newer)
    book.record("k", older)
    book.record("k", RateLimitSnapshot("openai", NOW + 2))
    assert book.latest("k") is newer and book.all() == {"k": newer}
    assert newer.as_dict()["tokens"]["remaining"] == 159976
    book.forget("k")
    assert book.latest("k") is None


# -- room_for(...).hold: how long the provider's own bucket needs before another call like this fits ------


UNKNOWN = LimitState()


def _snap(requests: LimitState, tokens: LimitState = UNKNOWN, **kw: Any) -> RateLimitSnapshot:
    return RateLimitSnapshot("openai", NOW, requests, tokens, **kw)


def test_an_empty_request_bucket_holds_for_one_request_of_refill() -> None:
    # 60 requests a minute, none left, full again in 60 s: one request's room in 1 s
    snap = _snap(LimitState(limit=60, remaining=0, reset_at=NOW + 60))
    assert snap.room_for(10, 10, now=NOW).hold == pytest.approx(1.0)
    assert snap.room_for(10, 10, now=NOW + 0.4).hold == pytest.approx(0.6)  # time already passed
    assert snap.room_for(10, 10, now=NOW + 2).hold == 0.0


def test_room_left_or_too_little_said_holds_nothing() -> None:
    assert _snap(LimitState(limit=60, remaining=1, reset_at=NOW + 1)).room_for(5, 5, NOW).hold == 0
    assert (
        _snap(LimitState(remaining=0, reset_at=NOW + 9)).room_for(5, 5, NOW).hold == 0
    )  # no limit
    assert _snap(LimitState(limit=60, remaining=0)).room_for(5, 5, NOW).hold == 0  # no reset
    assert _snap(LimitState()).room_for(5, 5, NOW).hold == 0  # Gemini: no headers at all


def test_tokens_hold_until_a_call_of_the_same_size_fits() -> None:
    # 6,000 tokens a minute, 100 left, full in 59 s: 5,900 refill in 59 s, i.e. 100/s;
    # a call of 300 tokens needs 200 more: 2 s
    snap = _snap(LimitState(), LimitState(limit=6000, remaining=100, reset_at=NOW + 59))
    assert snap.room_for(200, 100, now=NOW).hold == pytest.approx(2.0)
    assert snap.room_for(50, 50, now=NOW).hold == 0.0


def test_anthropic_input_and_output_buckets_count_their_own_side() -> None:
    snap = _snap(
        UNKNOWN,
        input_tokens=LimitState(limit=600, remaining=0, reset_at=NOW + 60),
        output_tokens=LimitState(limit=1000, remaining=1000, reset_at=NOW),
    )
    assert snap.room_for(100, 900, now=NOW).hold == pytest.approx(10.0)  # 100 input tokens at 10/s


def test_anthropic_headers_with_no_requests_left_hold() -> None:
    snap = parse_anthropic_headers(ANTHROPIC, NOW)
    state = snap.requests
    assert state.limit == 50 and state.remaining == 0 and state.reset_at is not None
    full_in = state.reset_at - NOW
    level = min(max(50 - full_in * 50 / 60, 0), 1)
    assert snap.room_for(10, 10, now=NOW).hold == pytest.approx(min(full_in, (1 - level) * 60 / 50))


def test_a_report_with_a_later_reset_than_its_remaining_allows_is_bounded() -> None:
    # 600 a minute, 0 left, but "full in 60 s" although 0.x remain: at most one request's refill
    state = LimitState(limit=600, remaining=0, reset_at=NOW + 60)
    assert state.wait_for(1, NOW) == pytest.approx(0.1)
    # a reset earlier than remaining says (clock skew): the level is capped at remaining + 1
    early = LimitState(limit=600, remaining=0, reset_at=NOW + 1)
    assert early.wait_for(1, NOW) == 0.0 and early.wait_for(5, NOW) == pytest.approx(0.4)


@given(
    limit=st.integers(1, 10_000),
    level=st.floats(0, 1),
    need=st.integers(0, 20_000),
)
def test_a_consistent_report_gives_exactly_the_providers_next_room(
    limit: int, level: float, need: int
) -> None:
    """A provider bucket of ``limit`` per minute at ``level`` (a fraction of its limit) reports
    remaining = floor(level) and the time until full; the hold is exactly the time until ``need``
    fits, never past the reset, and 0 when it fits now or never can."""
    rate = limit / 60.0
    true_level = level * limit
    full_in = (limit - true_level) / rate
    state = LimitState(limit=limit, remaining=math.floor(true_level), reset_at=NOW + full_in)
    wait = state.wait_for(need, NOW)
    if need <= math.floor(true_level) or need > limit:
        assert wait == 0.0
    else:
        assert wait == pytest.approx(max(0.0, (need - true_level) / rate), rel=1e-6, abs=1e-6)
        assert wait <= (NOW + full_in - NOW) + 1e-9


@pytest.mark.parametrize(
    ("text", "precision"),
    [
        ("12ms", 0.001),
        ("1.5s", 0.1),
        ("6m0s", 1.0),
        ("1m8.25s", 0.01),
        ("7", 1.0),
        ("2024-01-01T00:00:30Z", 1.0),
        ("2024-01-01T00:00:30.25Z", 0.01),
        ("2024-01-01T00:00:30.5-07:00", 0.1),
        (None, 1.0),
    ],
)
def test_a_resets_rounding_is_its_last_digit(text: str | None, precision: float) -> None:
    assert text_precision(text) == pytest.approx(precision)


def test_the_tolerance_is_the_rounding_at_the_refill_rate_and_at_most_one_unit() -> None:
    openai = parse_openai_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "59.987s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "100",
            "x-ratelimit-reset-tokens": "59s",
        },
        NOW,
    )
    assert openai.requests.tolerance() == pytest.approx(0.001 * 1 + 1e-3)
    assert openai.tokens.tolerance() == pytest.approx(1.0 + 1e-3)  # 1 s is 2,500 tokens: capped
    room = openai.room_for(10, 10, now=NOW)
    assert room.hold == pytest.approx(1 - 0.013, abs=1e-6)  # the 0.013 refilled since full
    assert room.requests == pytest.approx(1.0) and room.requests_tolerance < 0.01


@pytest.mark.parametrize("value", ["inf", "INF", "-inf", "1e999", "nan"])
def test_a_count_that_is_no_finite_number_is_not_said(value: str) -> None:
    """A header like ``x-ratelimit-limit-requests: inf`` is no limit said (it failed the parse)."""
    snapshot = parse_openai_headers(
        {"x-ratelimit-limit-requests": value, "x-ratelimit-remaining-requests": value}, now=NOW
    )
    assert snapshot.requests.limit is None and snapshot.requests.remaining is None
    anthropic = parse_anthropic_headers({"anthropic-ratelimit-requests-limit": value}, now=NOW)
    assert anthropic.requests.limit is None
