"""How each way a call ends becomes a key's health outcome (keys/outcomes.py)."""

from __future__ import annotations

import asyncio

import pytest

from kernel.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    OverloadedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
    provider_error_class,
)
from keys.outcomes import outcome_of


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, "success"),
        (ProviderConnectionError("refused", reached_provider=False), "unreachable"),
        (ProviderConnectionError("reset after sending", reached_provider=True), "transient"),
        (ProviderTimeoutError("read timed out"), "transient"),
        (ServerError("500"), "transient"),
        (OverloadedError("529"), "transient"),
        (MalformedResponseError("not JSON"), "transient"),
        (RateLimitedError("429", retry_after=7.0, scope="day"), "rate_limited"),
        (ProviderAuthError("401"), "auth"),
        (BadRequestError("400"), "neutral"),
        (ContextLengthExceededError("too long"), "neutral"),
        (ContentFilteredError("policy"), "neutral"),
        (asyncio.CancelledError(), "cancelled"),
        (GeneratorExit(), "neutral"),  # a stream its reader abandoned after it answered
    ],
)
def test_each_ending_maps_to_its_outcome(error: BaseException | None, kind: str) -> None:
    outcome = outcome_of(error)
    assert outcome.kind == kind
    assert outcome.error_class == ("" if error is None else type(error).__name__)


def test_a_429_carries_its_retry_time_and_scope() -> None:
    outcome = outcome_of(RateLimitedError("429", retry_after=7.0, scope="day"))
    assert (outcome.retry_after, outcome.scope) == (7.0, "day")


@pytest.mark.parametrize(
    ("name", "error_type"),
    [
        ("ServerError", "server_error"),
        ("OverloadedError", "overloaded"),
        ("ProviderTimeoutError", "timeout"),
        ("ProviderConnectionError", "connection_error"),
        ("MalformedResponseError", "malformed_response"),
        ("NotAnError", "provider_error"),
        ("", "provider_error"),
    ],
)
def test_a_stored_error_class_gives_back_its_error_type(name: str, error_type: str) -> None:
    assert provider_error_class(name).error_type == error_type
