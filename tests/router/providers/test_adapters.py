"""Each adapter against the simulator: success, streaming, tool calls, and every error class.

Every test runs for OpenAI, Azure OpenAI, Anthropic and Gemini over one shared aiohttp session,
as the router uses them, and checks that no error text, repr or dict ever contains the secret.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from kernel.errors import (
    BadRequestError,
    ContentFilteredError,
    ContextLengthExceededError,
    MalformedResponseError,
    OverloadedError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from kernel.masking import mask_secret
from keys.models import APIKey
from router.providers import ChatRequest, ChatResult, StreamEnd, TextDelta, get_adapter
from router.providers.base import ProviderAdapter
from router.simulator import FaultConfig, ProviderSimulator, SimKey
from tests.router.providers.conftest import OTHER, SECRET
from tests.router.simulator.conftest import SimFactory

pytestmark = pytest.mark.integration
MODELS = {
    "openai": "gpt-4o-mini",
    "azure": "gpt4o-deployment",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.0-flash",
}
PROVIDERS = list(MODELS)
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]


def key_for(sim: ProviderSimulator, provider: str, base_url: str | None = None) -> APIKey:
    model = MODELS[provider]
    return APIKey(
        key_id="k1",
        model_name=model,
        provider=provider,  # type: ignore[arg-type]
        base_url=base_url or sim.base_url_for(provider, deployment=model),
    )


def request(provider: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=MODELS[provider], messages=kwargs.pop("messages", CHAT), **kwargs)


def no_secret(error: ProviderError, secret: str = SECRET) -> None:
    for text in (str(error), repr(error), repr(error.args), str(error.to_dict())):
        assert secret not in text
    assert error.key == mask_secret(secret)


async def stream_all(
    adapter: ProviderAdapter, key: APIKey, secret: str, req: ChatRequest
) -> list[Any]:
    return [event async for event in adapter.stream(key, secret, req)]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chat_success(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(key={"rpm": 100, "tpm": 100_000})
    result = await get_adapter(provider, http).chat(
        key_for(sim, provider), SECRET, request(provider, max_tokens=100)
    )
    assert isinstance(result, ChatResult) and result.provider == provider
    assert result.content.startswith(f"Simulated {provider} reply to 2 message(s).")
    assert result.finish_reason == "stop" and result.usage.completion_tokens == 24
    assert result.usage.total_tokens == result.usage.prompt_tokens + 24 and result.latency_ms > 0
    assert result.rate_limits is not None
    if provider in ("openai", "anthropic"):
        assert (
            result.rate_limits.requests.limit == 100 and result.rate_limits.requests.remaining == 99
        )
    if provider == "azure":
        assert result.rate_limits.requests.remaining == 99
    record = sim.requests(key_id="k1")[-1]
    assert record.messages[0]["role"] == "system" and record.max_tokens == 100


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_success(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim()
    events = await stream_all(
        get_adapter(provider, http),
        key_for(sim, provider),
        SECRET,
        request(provider, max_tokens=10),
    )
    deltas, end = events[:-1], events[-1]
    assert deltas and all(isinstance(e, TextDelta) for e in deltas)
    assert isinstance(end, StreamEnd) and end.finish_reason == "length"
    assert end.content == "".join(e.text for e in deltas) and end.content.startswith("Simulated")
    assert end.usage is not None and end.usage.completion_tokens == 10


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_forced_tool_call(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str, streaming: bool
) -> None:
    sim = await make_sim()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a thing",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    req = request(provider, extras={"tools": tools, "tool_choice": "required"})
    adapter = get_adapter(provider, http)
    if streaming:
        end = (await stream_all(adapter, key_for(sim, provider), SECRET, req))[-1]
        calls, finish = end.tool_calls, end.finish_reason
    else:
        result = await adapter.chat(key_for(sim, provider), SECRET, req)
        calls, finish = result.tool_calls, result.finish_reason
    assert (
        finish == "tool_calls"
        and [c.name for c in calls] == ["lookup"]
        and calls[0].arguments == "{}"
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_results_are_sent_back(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim()
    messages = [
        {"role": "user", "content": "look it up"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"found": "the answer"}'},
    ]
    result = await get_adapter(provider, http).chat(
        key_for(sim, provider), SECRET, request(provider, messages=messages)
    )
    assert result.finish_reason == "stop"
    logged = sim.requests(key_id="k1")[-1].as_dict()["messages"]
    assert "the answer" in logged[-1]["content"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_rate_limited(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str, streaming: bool
) -> None:
    sim = await make_sim(
        keys=[SimKey(key_id="k1", secret=SECRET, rpm=1), SimKey(key_id="d", secret=OTHER, rpd=1)]
    )
    adapter = get_adapter(provider, http)
    for secret, scope in ((SECRET, "minute"), (OTHER, "day")):
        await adapter.chat(key_for(sim, provider), secret, request(provider))
        with pytest.raises(RateLimitedError) as caught:
            if streaming:
                await stream_all(adapter, key_for(sim, provider), secret, request(provider))
            else:
                await adapter.chat(key_for(sim, provider), secret, request(provider))
        error = caught.value
        no_secret(error, secret)
        assert error.status == 429 and error.scope == scope
        assert error.retry_after is not None and error.retry_after > 0
        assert error.rate_limits is not None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auth_errors(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim()
    adapter = get_adapter(provider, http)
    with pytest.raises(ProviderAuthError) as caught:
        await adapter.chat(key_for(sim, provider), OTHER, request(provider))
    no_secret(caught.value, OTHER)
    sim.revoke_key("k1")
    with pytest.raises(ProviderAuthError) as caught:
        await stream_all(adapter, key_for(sim, provider), SECRET, request(provider))
    no_secret(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_request_and_context_length(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    model = MODELS[provider]
    sim = await make_sim(context_windows={model: 40}, max_output_tokens={model: 30})
    adapter = get_adapter(provider, http)
    with pytest.raises(BadRequestError) as bad:
        await adapter.chat(key_for(sim, provider), SECRET, request(provider, max_tokens=31))
    assert type(bad.value) is BadRequestError
    long = [{"role": "user", "content": "many words " * 30}]
    with pytest.raises(ContextLengthExceededError) as caught:
        await adapter.chat(
            key_for(sim, provider), SECRET, request(provider, messages=long, max_tokens=5)
        )
    no_secret(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_content_filtered(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str, streaming: bool
) -> None:
    sim = await make_sim()
    adapter = get_adapter(provider, http)
    req = request(provider, messages=[{"role": "user", "content": "please SIM_CONTENT_FILTER"}])
    with pytest.raises(ContentFilteredError) as caught:
        if streaming:
            await stream_all(adapter, key_for(sim, provider), SECRET, req)
        else:
            await adapter.chat(key_for(sim, provider), SECRET, req)
    no_secret(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"error_rate": 1.0}, ServerError),
        ({"malformed_rate": 1.0}, MalformedResponseError),
        ({"overload_rate": 1.0}, ServerError),
        ({"spurious_429_rate": 1.0}, RateLimitedError),
    ],
)
async def test_fault_classes(
    make_sim: SimFactory,
    http: aiohttp.ClientSession,
    provider: str,
    faults: dict[str, float],
    expected: type[ProviderError],
) -> None:
    sim = await make_sim(faults=FaultConfig(**faults))
    if provider == "anthropic" and "overload_rate" in faults:
        expected = OverloadedError
    with pytest.raises(expected) as caught:
        await get_adapter(provider, http).chat(key_for(sim, provider), SECRET, request(provider))
    no_secret(caught.value)
    if "overload_rate" in faults:
        assert caught.value.status == (529 if provider == "anthropic" else 503)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_malformed_stream_chunk(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(faults=FaultConfig(malformed_rate=1.0))
    with pytest.raises(MalformedResponseError):
        await stream_all(
            get_adapter(provider, http), key_for(sim, provider), SECRET, request(provider)
        )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_timeout(make_sim: SimFactory, http: aiohttp.ClientSession, provider: str) -> None:
    sim = await make_sim(faults=FaultConfig(timeout_rate=1.0, hang_seconds=30))
    adapter = get_adapter(provider, http, timeout=0.3)
    with pytest.raises(ProviderTimeoutError) as caught:
        await adapter.chat(key_for(sim, provider), SECRET, request(provider))
    no_secret(caught.value)
    with pytest.raises(ProviderTimeoutError):
        await stream_all(adapter, key_for(sim, provider), SECRET, request(provider, timeout=0.3))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reset_after_sending_reached_the_provider(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(faults=FaultConfig(reset_rate=1.0))
    with pytest.raises(ProviderConnectionError) as caught:
        await get_adapter(provider, http).chat(key_for(sim, provider), SECRET, request(provider))
    assert caught.value.reached_provider is True
    no_secret(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_cut_midway(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim(faults=FaultConfig(stream_cut_rate=1.0), completion_tokens=40)
    received: list[Any] = []
    with pytest.raises(ProviderConnectionError) as caught:
        async for event in get_adapter(provider, http).stream(
            key_for(sim, provider), SECRET, request(provider)
        ):
            received.append(event)
    assert caught.value.reached_provider is True
    assert not any(isinstance(e, StreamEnd) for e in received)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refused_connection_never_reached_the_provider(
    make_sim: SimFactory, http: aiohttp.ClientSession, provider: str
) -> None:
    sim = await make_sim()
    port = sim.port
    await sim.stop()  # nothing listens on this port any more
    base = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    if provider == "azure":
        base = f"http://127.0.0.1:{port}/openai/deployments/{MODELS[provider]}"
    adapter = get_adapter(provider, http)
    for call in (adapter.chat, stream_all):
        with pytest.raises(ProviderConnectionError) as caught:
            if call is stream_all:
                await stream_all(adapter, key_for(sim, provider, base), SECRET, request(provider))
            else:
                await adapter.chat(key_for(sim, provider, base), SECRET, request(provider))
        assert caught.value.reached_provider is False
        no_secret(caught.value)


async def test_gemini_key_travels_in_a_header_only(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    adapter = get_adapter("gemini", http)
    key = key_for(sim, "gemini")
    for stream in (False, True):
        url = adapter.endpoint(key, request("gemini"), stream=stream)
        assert SECRET not in url and "key=" not in url
    assert adapter.auth_headers(key, SECRET) == {"x-goog-api-key": SECRET}


def test_unknown_provider_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown provider 'cohere'"):
        get_adapter("cohere", None)  # type: ignore[arg-type]
