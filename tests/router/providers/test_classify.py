"""Each provider's error answers (real samples) map to the right router error, secrets masked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    OverloadedError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from kernel.masking import mask_secret
from router.providers.classify import anthropic_error, gemini_error, openai_error
from router.providers.ratelimits import parse_rate_limits
from router.providers.transport import CallContext

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
CTX = CallContext("openai", SECRET)


def oa(message: str, type_: str | None, code: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code, **extra}}


def classify(
    fn: Any, status: int, body: Any, headers: dict[str, str] | None = None, provider: str = "openai"
) -> ProviderError:
    snapshot = parse_rate_limits(provider, headers or {}, body if status == 429 else None)
    error: ProviderError = fn(
        status, body, json.dumps(body).encode(), snapshot, CallContext(provider, SECRET)
    )
    assert SECRET not in str(error) and SECRET not in repr(error.args)
    assert (
        error.key == mask_secret(SECRET) and error.provider == provider and error.status == status
    )
    return error


def test_openai_tpm_429_retry_from_the_message() -> None:
    body = oa(
        "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
        "Used 29937, Requested 385. Please try again in 644ms. Visit https://platform.openai.com/account/rate-limits",
        "tokens",
        "rate_limit_exceeded",
    )
    error = classify(openai_error, 429, body)
    assert isinstance(error, RateLimitedError) and error.scope == "minute"
    assert error.retry_after == pytest.approx(0.644)


def test_openai_429_falls_back_to_reset_headers() -> None:
    body = oa("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    error = classify(
        openai_error,
        429,
        body,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"},
    )
    assert isinstance(error, RateLimitedError) and 19 < (error.retry_after or 0) <= 20


@pytest.mark.parametrize(
    "body",
    [
        oa(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        oa(
            "Rate limit reached for gpt-4o-mini in organization org-x on requests per day (RPD): "
            "Limit 200, Used 200, "
            "Requested 1. Please try again in 7m12s.",
            "requests",
            "rate_limit_exceeded",
        ),
    ],
)
def test_openai_daily_quotas(body: dict[str, Any]) -> None:
    error = classify(openai_error, 429, body)
    assert isinstance(error, RateLimitedError) and error.scope == "day"


def test_openai_400s() -> None:
    context = oa(
        "This model's maximum context length is 128000 tokens. "
        "However, your messages resulted in 130000 "
        "tokens.",
        "invalid_request_error",
        "context_length_exceeded",
    )
    assert isinstance(classify(openai_error, 400, context), ContextLengthExceededError)
    azure_filter = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        }
    }
    assert isinstance(
        classify(openai_error, 400, azure_filter, provider="azure"), ContentFilteredError
    )
    not_found = oa(
        "The model `gpt-9` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )
    error = classify(openai_error, 404, not_found)
    assert type(error) is BadRequestError


def test_openai_401_echoing_the_key_is_masked() -> None:
    body = oa(
        f"Incorrect API key provided: {SECRET}. You can find your API key at ...",
        "invalid_request_error",
        "invalid_api_key",
    )
    error = classify(openai_error, 401, body)
    assert isinstance(error, ProviderAuthError) and mask_secret(SECRET) in str(error)


def test_azure_429_retry_after_seconds_in_message() -> None:
    body = {
        "error": {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
            "API version 2024-10-21 have exceeded token rate limit. Please retry after 6 seconds.",
        }
    }
    error = classify(openai_error, 429, body, provider="azure")
    assert isinstance(error, RateLimitedError) and error.retry_after == 6.0


def test_openai_5xx_and_unparseable_bodies() -> None:
    assert isinstance(classify(openai_error, 502, "<html>Bad gateway</html>"), ServerError)
    assert isinstance(classify(openai_error, 529, None), OverloadedError)


def test_anthropic_errors() -> None:
    def body(type_: str, message: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": "req_1",
        }

    error = classify(
        anthropic_error,
        429,
        body(
            "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"
        ),
        {"retry-after": "13"},
        provider="anthropic",
    )
    assert (
        isinstance(error, RateLimitedError)
        and error.retry_after == 13.0
        and error.scope == "minute"
    )
    assert isinstance(
        classify(
            anthropic_error, 529, body("overloaded_error", "Overloaded"), provider="anthropic"
        ),
        OverloadedError,
    )
    assert isinstance(
        classify(
            anthropic_error,
            401,
            body("authentication_error", "invalid x-api-key"),
            provider="anthropic",
        ),
        ProviderAuthError,
    )
    assert isinstance(
        classify(anthropic_error, 403, body("permission_error", "no"), provider="anthropic"),
        ProviderAuthError,
    )
    too_long = body("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum")
    assert isinstance(
        classify(anthropic_error, 400, too_long, provider="anthropic"), ContextLengthExceededError
    )
    max_tokens = body(
        "invalid_request_error",
        "max_tokens: 10000 > 4096, which is the maximum allowed number of "
        "output tokens for claude-3-5-sonnet-20240620",
    )
    assert type(classify(anthropic_error, 400, max_tokens, provider="anthropic")) is BadRequestError
    assert isinstance(
        classify(
            anthropic_error, 500, body("api_error", "Internal server error"), provider="anthropic"
        ),
        ServerError,
    )


def test_gemini_errors() -> None:
    invalid_key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    assert isinstance(
        classify(gemini_error, 400, invalid_key, provider="gemini"), ProviderAuthError
    )
    denied = {
        "error": {
            "code": 403,
            "message": "Method doesn't allow unregistered callers",
            "status": "PERMISSION_DENIED",
        }
    }
    assert isinstance(classify(gemini_error, 403, denied, provider="gemini"), ProviderAuthError)
    context = {
        "error": {
            "code": 400,
            "message": "The input token count (3475108) exceeds the maximum number of tokens "
            "allowed (1048576).",
            "status": "INVALID_ARGUMENT",
        }
    }
    assert isinstance(
        classify(gemini_error, 400, context, provider="gemini"), ContextLengthExceededError
    )
    from tests.router.providers.test_ratelimits import GEMINI_429

    error = classify(gemini_error, 429, GEMINI_429, provider="gemini")
    assert (
        isinstance(error, RateLimitedError)
        and error.retry_after == 26.0
        and error.scope == "minute"
    )
    assert error.rate_limits is not None and error.rate_limits.tokens.limit == 250000
    bare = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
    error = classify(gemini_error, 429, bare, provider="gemini")
    assert isinstance(error, RateLimitedError) and error.retry_after is None
    unavailable = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    assert isinstance(classify(gemini_error, 503, unavailable, provider="gemini"), ServerError)
