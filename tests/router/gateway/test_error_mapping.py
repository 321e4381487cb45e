"""Router answers that failed, as OpenAI's clients expect them (router/gateway/errors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import GatewayError, ProviderTimeoutError, RouterError, error_class
from router.gateway.errors import from_answer


def failed(error_type: str, retry_after: float | None = None) -> dict[str, Any]:
    return {
        "success": False,
        "error": "it failed",
        "error_type": error_type,
        "retry_after": retry_after,
    }


@pytest.mark.parametrize(
    ("error_type", "status", "code"),
    [
        ("server_error", 502, "upstream_server_error"),
        ("connection_error", 502, "upstream_connection_error"),
        ("overloaded", 503, "upstream_overloaded"),
        ("timeout", 504, "upstream_timeout"),
    ],
)
def test_an_upstream_failure_keeps_its_retry_time_as_retry_after(
    error_type: str, status: int, code: str
) -> None:
    error = from_answer(failed(error_type, 12.2))
    assert (error.status, error.code) == (status, code)
    assert error.headers() == {"Retry-After": "13", "retry-after-ms": "12200"}
    assert from_answer(failed(error_type)).headers() == {}


def test_no_room_is_429_and_no_key_left_is_503() -> None:
    limited = from_answer(failed("rate_limited", 3.0))
    assert (limited.status, limited.code, limited.headers()["Retry-After"]) == (
        429,
        "rate_limit_exceeded",
        "3",
    )
    gone = from_answer(failed("no_keys_available"))
    assert (gone.status, gone.type, gone.code) == (503, "server_error", "no_keys_available")


def test_an_unknown_model_is_openais_404_model_not_found() -> None:
    error = from_answer(failed("model_not_available"))
    assert (error.status, error.type, error.code, error.param) == (
        404,
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert error.headers() == {}


@pytest.mark.parametrize(
    ("error_type", "status", "kind", "code"),
    [
        ("bad_request", 400, "invalid_request_error", "invalid_request"),
        ("context_length_exceeded", 400, "invalid_request_error", "context_length_exceeded"),
        ("content_filtered", 400, "invalid_request_error", "content_filter"),
        ("request_too_large", 400, "invalid_request_error", "request_too_large"),
        ("invalid_request_error", 400, "invalid_request_error", "invalid_request"),
        ("auth", 502, "upstream_error", "upstream_auth_failed"),
        ("malformed_response", 502, "upstream_error", "upstream_malformed_response"),
        ("provider_error", 502, "upstream_error", "upstream_error"),
        ("secret_store_error", 502, "upstream_error", "secret_store_error"),
        ("store_unavailable", 503, "server_error", "store_unavailable"),
        ("conversation_too_large", 500, "server_error", "internal_error"),
        ("key_not_found", 500, "server_error", "internal_error"),
        ("internal_error", 500, "server_error", "internal_error"),
    ],
)
def test_each_error_class_answers_its_status_and_code(
    error_type: str, status: int, kind: str, code: str
) -> None:
    error = from_answer(failed(error_type))
    assert (error.status, error.type, error.code) == (status, kind, code)
    assert error.body()["error"]["message"] == "it failed"


def test_a_store_failure_says_when_to_retry() -> None:
    assert from_answer(failed("store_unavailable")).headers()["Retry-After"] == "1"


def test_an_error_class_without_its_own_row_answers_as_its_nearest_base() -> None:
    class SlowUpstreamError(ProviderTimeoutError):
        error_type = "test_slow_upstream"

    assert error_class("test_slow_upstream") is SlowUpstreamError
    error = from_answer(failed("test_slow_upstream", 2.0))
    assert (error.status, error.code, error.headers()["Retry-After"]) == (
        504,
        "upstream_timeout",
        "2",
    )


def test_gateway_errors_are_router_errors() -> None:
    error = from_answer(failed("model_not_available"))
    assert isinstance(error, GatewayError) and isinstance(error, RouterError)
