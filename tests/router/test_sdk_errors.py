"""The official SDKs' exceptions classified like the router's own failures (router/sdk_errors.py),
and the usage read from their responses (router/sdk_usage.py).

Each exception is the SDK's own class, built the way the SDK builds it from an HTTP answer
(an httpx response with the provider's status, headers and error body); the rotation tests in
tests/router/test_lease.py see the same classes raised by real calls to the simulator.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from kernel.errors import (
    BadRequestError,
    ContextLengthExceededError,
    OverloadedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from router.providers import Usage
from router.sdk_errors import provider_error_of
from router.sdk_usage import usage_from

SECRET = "sk-test-" + "q" * 40
OPENAI_URL = "https://api.openai.com/v1/chat/completions"


def _response(module: Any, status: int, body: Any, url: str, **headers: str) -> Any:
    return module.Response(status, headers=headers, json=body, request=module.Request("POST", url))


def _openai(cls: type[openai.APIStatusError], status: int, **headers: str) -> Exception:
    body = {"error": {"message": f"failed for {SECRET}", "type": "x", "code": None}}
    return cls("failed", response=_response(httpx2, status, body, OPENAI_URL, **headers), body=body)


def _anthropic(cls: type[anthropic.APIStatusError], status: int, kind: str, **h: str) -> Exception:
    body = {"type": "error", "error": {"type": kind, "message": "failed"}}
    url = "https://api.anthropic.com/v1/messages"
    return cls("failed", response=_response(httpx2, status, body, url, **h), body=body)


def _gemini(status: int, label: str, details: list[Any] | None = None) -> Exception:
    body = {
        "error": {"code": status, "message": "failed", "status": label, "details": details or []}
    }
    url = "https://generativelanguage.googleapis.com/v1beta/models/x:generateContent"
    response = _response(httpx, status, body, url)
    cls = genai_errors.ServerError if status >= 500 else genai_errors.ClientError
    return cls(status, body, response)


def _with_cause(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


REQUEST = httpx2.Request("POST", OPENAI_URL)
RETRY = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}]

CASES: list[tuple[str, str, BaseException, type[ProviderError], dict[str, Any]]] = [
    (
        "openai 429",
        "openai",
        _openai(openai.RateLimitError, 429, **{"retry-after": "7"}),
        RateLimitedError,
        {"retry_after": 7.0, "status": 429},
    ),
    ("openai 401", "openai", _openai(openai.AuthenticationError, 401), ProviderAuthError, {}),
    ("openai 403", "openai", _openai(openai.PermissionDeniedError, 403), ProviderAuthError, {}),
    ("openai 500", "openai", _openai(openai.InternalServerError, 500), ServerError, {}),
    ("openai 400", "openai", _openai(openai.BadRequestError, 400), BadRequestError, {}),
    ("openai timeout", "openai", openai.APITimeoutError(REQUEST), ProviderTimeoutError, {}),
    (
        "openai refused",
        "openai",
        _with_cause(openai.APIConnectionError(request=REQUEST), httpx2.ConnectError("refused")),
        ProviderConnectionError,
        {"reached_provider": False},
    ),
    (
        "openai reset",
        "openai",
        _with_cause(openai.APIConnectionError(request=REQUEST), httpx2.ReadError("reset")),
        ProviderConnectionError,
        {"reached_provider": True},
    ),
    (
        "anthropic 429",
        "anthropic",
        _anthropic(anthropic.RateLimitError, 429, "rate_limit_error", **{"retry-after": "3"}),
        RateLimitedError,
        {"retry_after": 3.0},
    ),
    (
        "anthropic 529",
        "anthropic",
        _anthropic(anthropic.OverloadedError, 529, "overloaded_error"),
        OverloadedError,
        {},
    ),
    (
        "anthropic 401",
        "anthropic",
        _anthropic(anthropic.AuthenticationError, 401, "authentication_error"),
        ProviderAuthError,
        {},
    ),
    (
        "anthropic 403",
        "anthropic",
        _anthropic(anthropic.PermissionDeniedError, 403, "permission_error"),
        ProviderAuthError,
        {},
    ),
    (
        "anthropic 500",
        "anthropic",
        _anthropic(anthropic.InternalServerError, 500, "api_error"),
        ServerError,
        {},
    ),
    (
        "anthropic 400",
        "anthropic",
        _anthropic(anthropic.BadRequestError, 400, "invalid_request_error"),
        BadRequestError,
        {},
    ),
    (
        "anthropic timeout",
        "anthropic",
        anthropic.APITimeoutError(httpx2.Request("POST", "https://a")),
        ProviderTimeoutError,
        {},
    ),
    (
        "gemini 429",
        "gemini",
        _gemini(429, "RESOURCE_EXHAUSTED", RETRY),
        RateLimitedError,
        {"retry_after": 9.0},
    ),
    ("gemini 401", "gemini", _gemini(401, "UNAUTHENTICATED"), ProviderAuthError, {}),
    ("gemini 403", "gemini", _gemini(403, "PERMISSION_DENIED"), ProviderAuthError, {}),
    ("gemini 503", "gemini", _gemini(503, "UNAVAILABLE"), ServerError, {}),
    ("gemini 500", "gemini", _gemini(500, "INTERNAL"), ServerError, {}),
    ("gemini read timeout", "gemini", httpx.ReadTimeout("slow"), ProviderTimeoutError, {}),
    (
        "gemini refused",
        "gemini",
        httpx.ConnectError("refused"),
        ProviderConnectionError,
        {"reached_provider": False},
    ),
]


@pytest.mark.parametrize(
    ("provider", "exc", "cls", "attrs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_sdk_exception_maps_to_its_router_error(
    provider: str, exc: BaseException, cls: type[ProviderError], attrs: dict[str, Any]
) -> None:
    error = provider_error_of(exc, provider, SECRET)
    assert type(error) is cls, error
    assert error.provider == provider
    for name, value in attrs.items():
        assert getattr(error, name) == value, (name, error)
    assert SECRET not in str(error)


def test_the_context_window_and_a_bare_exception() -> None:
    body = {"error": {"message": "too long", "type": "x", "code": "context_length_exceeded"}}
    response = _response(httpx2, 400, body, OPENAI_URL)
    exc = openai.BadRequestError("too long", response=response, body=body)
    assert type(provider_error_of(exc, "openai", SECRET)) is ContextLengthExceededError
    assert provider_error_of(ValueError("a bug"), "openai", SECRET) is None
    assert provider_error_of(KeyError("x"), "gemini", SECRET) is None


def test_usage_from_each_sdk_response() -> None:
    chat = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 4,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        }
    )
    assert usage_from(chat) == Usage(11, 4, 3, 15, reasoning_tokens=2)
    embedding = CreateEmbeddingResponse.model_validate(
        {
            "data": [],
            "model": "text-embedding-3-small",
            "object": "list",
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
        }
    )
    assert usage_from(embedding) == Usage(9, 0, 0, 9)
    responses = {
        "usage": {
            "input_tokens": 20,
            "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 1},
        }
    }
    assert usage_from(responses) == Usage(20, 5, 4, 25, reasoning_tokens=1)
    message = anthropic.types.Message.model_validate(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 10,
                "output_tokens": 6,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 5,
            },
        }
    )
    assert usage_from(message) == Usage(45, 6, 30, 51, cache_write_tokens=5)
    gemini = genai_types.GenerateContentResponse(
        usage_metadata=genai_types.GenerateContentResponseUsageMetadata(
            prompt_token_count=8,
            candidates_token_count=3,
            thoughts_token_count=2,
            cached_content_token_count=1,
            total_token_count=13,
        )
    )
    assert usage_from(gemini) == Usage(8, 5, 1, 13, reasoning_tokens=2)
    assert usage_from("no usage here") is None and usage_from({"nothing": 1}) is None
