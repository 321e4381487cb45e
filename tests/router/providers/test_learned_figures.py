"""The limits a provider's answer reports, as the pool learns them (router/provider_limits.py
``figures``): OpenAI's and Anthropic's headers, Gemini's 429 bodies (router/providers/gemini_quota.py).
"""

from __future__ import annotations

from typing import Any

from router.provider_limits import figures
from router.providers.gemini_quota import gemini_quota, parse_gemini_error
from router.providers.ratelimits import parse_anthropic_headers, parse_openai_headers

NOW = 1_700_000_000.0

OPENAI = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-remaining-tokens": "199970",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-reset-tokens": "9ms",
}

ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z",
    "anthropic-ratelimit-tokens-limit": "8000",
    "anthropic-ratelimit-tokens-remaining": "7900",
    "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21Z",
    "anthropic-ratelimit-input-tokens-limit": "40000",
    "anthropic-ratelimit-input-tokens-remaining": "39900",
    "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:21Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "7900",
    "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:21Z",
}


def gemini_429(*violations: dict[str, Any], delay: str = "26s") -> dict[str, Any]:
    """A 429 body as the Gemini API sends it (RESOURCE_EXHAUSTED with its details)."""
    return {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing "
            "details. For more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": list(violations),
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        }
    }


PER_MINUTE_REQUESTS = {
    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
    "quotaValue": "15",
}
PER_MINUTE_TOKENS = {
    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
    "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
    "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
    "quotaValue": "1000000",
}
PER_DAY_REQUESTS = {
    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
    "quotaValue": "1500",
}


def test_openai_reports_requests_and_tokens_per_minute() -> None:
    assert figures(parse_openai_headers(OPENAI, NOW)) == "500,200000,,,"


def test_anthropic_reports_input_and_output_apart_and_its_tokens_figure_is_no_total() -> None:
    assert figures(parse_anthropic_headers(ANTHROPIC, NOW)) == "50,,,40000,8000"
    older = {k: v for k, v in ANTHROPIC.items() if "put-tokens" not in k}
    assert figures(parse_anthropic_headers(older, NOW)) == "50,8000,,,"


def test_an_answer_without_limits_reports_nothing() -> None:
    assert figures(None) == ""
    assert figures(parse_openai_headers({"x-request-id": "req_1"}, NOW)) == ""
    assert figures(parse_gemini_error({"error": {"code": 429}}, NOW)) == ""


def test_gemini_quota_ids_say_the_period_and_the_unit() -> None:
    assert gemini_quota(PER_MINUTE_REQUESTS) == ("minute", "requests")
    assert gemini_quota(PER_MINUTE_TOKENS) == ("minute", "tokens")
    assert gemini_quota(PER_DAY_REQUESTS) == ("day", "requests")
    paid = {"quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute", "quotaValue": "4"}
    assert gemini_quota(paid) == ("minute", "tokens")
    assert gemini_quota({"quotaId": "SomethingPerHour", "quotaValue": "3"}) is None


def test_gemini_per_minute_requests_and_tokens() -> None:
    snap = parse_gemini_error(gemini_429(PER_MINUTE_REQUESTS, PER_MINUTE_TOKENS), NOW)
    assert snap.retry_after == 26.0 and not snap.per_day
    assert snap.requests.limit == 15 and snap.requests.reset_at == NOW + 26
    assert snap.tokens.limit == 1_000_000
    assert figures(snap) == "15,1000000,,,"


def test_gemini_per_day_requests() -> None:
    snap = parse_gemini_error(gemini_429(PER_DAY_REQUESTS, delay="3600s"), NOW)
    assert snap.per_day and snap.requests.limit is None
    assert snap.day_requests is not None and snap.day_requests.limit == 1500
    assert figures(snap) == ",,1500,,"
    both = parse_gemini_error(gemini_429(PER_MINUTE_REQUESTS, PER_DAY_REQUESTS), NOW)
    assert figures(both) == "15,,1500,,"


def test_gemini_malformed_details_are_ignored() -> None:
    bad = dict(PER_MINUTE_REQUESTS, quotaValue="many")
    body = gemini_429(bad, "not a violation", {"quotaId": 7})  # type: ignore[arg-type]
    assert figures(parse_gemini_error(body, NOW)) == ""
    assert figures(parse_gemini_error({"error": {"details": "nope"}}, NOW)) == ""
