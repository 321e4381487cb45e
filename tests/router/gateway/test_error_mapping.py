"""Router answers that failed, as OpenAI's clients expect them (router/gateway/errors.py)."""

from __future__ import annotations

from typing import Any

import pytest

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
