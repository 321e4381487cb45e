"""router.testing: the scripted transport drives every real adapter, in each provider's format,
and its network failures go through the real translation (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import (
    ContextLengthExceededError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from keys.models import APIKey
from router.providers import ChatRequest, StreamEnd, TextDelta, get_adapter
from router.testing import (
    Reply,
    ScriptedTransport,
    connect_timeout,
    dropped,
    error,
    ok,
    rate_limited,
    read_timeout,
    refused,
)
from tests.keys.manager_helpers import fake_secret

MODELS = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
}
PROVIDERS = pytest.mark.parametrize("provider", list(MODELS))


def key_for(provider: str) -> APIKey:
    base = "https://example.openai.azure.com/openai/deployments/d" if provider == "azure" else None
    return APIKey(key_id="k", model_name=MODELS[provider], provider=provider, base_url=base)


def chat(provider: str) -> ChatRequest:
    return ChatRequest(MODELS[provider], [{"role": "user", "content": "hi"}], max_tokens=50)


@PROVIDERS
async def test_ok_answers_in_the_providers_format_whole_and_streamed(provider: str) -> None:
    transport, secret = ScriptedTransport(ok("hello there", 12, 3)), fake_secret()
    adapter = get_adapter(provider, transport)
    result = await adapter.chat(key_for(provider), secret, chat(provider))
    events = [e async for e in adapter.stream(key_for(provider), secret, chat(provider))]
    assert result.content == "hello there" and result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 3)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["hello there"]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.usage is not None and end.usage.total_tokens == 15
    calls = transport.calls
    assert [(c.provider, c.model, c.request.stream) for c in calls] == [
        (provider, MODELS[provider], False),
        (provider, MODELS[provider], True),
    ]
    assert all(c.secret == secret for c in calls)
    assert not any(secret in repr(c) or secret in repr(c.request) for c in calls)


@PROVIDERS
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (rate_limited(retry_after=4), RateLimitedError),
        (error(401, "invalid api key", kind="authentication_error"), ProviderAuthError),
        (error(500, "boom", kind="api_error"), ServerError),
        (error(400, "prompt is too long: maximum context length"), ContextLengthExceededError),
    ],
    ids=["429", "401", "500", "context"],
)
async def test_error_answers_are_classified_by_the_real_adapter(
    provider: str, script: Any, expected: type[Exception]
) -> None:
    adapter = get_adapter(provider, ScriptedTransport(script))
    with pytest.raises(expected) as caught:
        await adapter.chat(key_for(provider), fake_secret(), chat(provider))
    if expected is RateLimitedError:
        assert caught.value.retry_after == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reply", "expected", "reached"),
    [
        (refused(), ProviderConnectionError, False),
        (connect_timeout(), ProviderConnectionError, False),
        (read_timeout(), ProviderTimeoutError, True),
        (dropped(), ProviderConnectionError, True),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "dropped"],
)
async def test_network_failures_say_whether_the_call_reached_the_provider(
    reply: Reply, expected: type[Exception], reached: bool
) -> None:
    adapter = get_adapter("openai", ScriptedTransport(reply))
    with pytest.raises(expected) as caught:
        await adapter.chat(key_for("openai"), fake_secret(), chat("openai"))
    # a timeout is always a call that may have been processed (it has no reached_provider)
    assert getattr(caught.value, "reached_provider", True) is reached


async def test_rules_match_by_secret_and_model_in_order_and_their_last_reply_repeats() -> None:
    a, b = fake_secret(), fake_secret()
    transport = ScriptedTransport()
    transport.script(rate_limited(), ok("a again"), secret=a)
    transport.script(error(500), model="gpt-4.1-mini")
    adapter = get_adapter("openai", transport)
    key = key_for("openai")
    with pytest.raises(RateLimitedError):
        await adapter.chat(key, a, chat("openai"))
    assert [(await adapter.chat(key, a, chat("openai"))).content for _ in range(2)] == [
        "a again",
        "a again",
    ]
    assert (await adapter.chat(key, b, chat("openai"))).content == "scripted answer"
    with pytest.raises(ServerError):
        await adapter.chat(key, b, ChatRequest("gpt-4.1-mini", [{"role": "user", "content": "x"}]))


def test_a_script_needs_a_reply() -> None:
    with pytest.raises(ValueError, match="at least one reply"):
        ScriptedTransport().script(secret="sk-x")
