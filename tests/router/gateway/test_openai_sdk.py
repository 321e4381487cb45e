"""The official openai SDK (async and sync) against the gateway, the provider simulator upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "Hello there"}]


async def test_async_chat_completion(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey(name="app"))
    answer = await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert answer.object == "chat.completion" and answer.model == MODEL
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert 'You said: "Hello there"' in (choice.message.content or "")
    assert answer.usage is not None and answer.usage.completion_tokens == 24
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 24
    assert gw.sim is not None and gw.sim.stats()["totals"]["admitted_requests"] == 1


async def test_sync_client(gw: GatewayHarness) -> None:
    key = await gw.vkey()

    def call() -> tuple[str, list[str]]:
        with gw.sync_client(key) as client:
            answer = client.chat.completions.create(model=MODEL, messages=HELLO)
            models = [m.id for m in client.models.list()]
            return answer.choices[0].message.content or "", models

    content, models = await asyncio.to_thread(call)
    assert 'You said: "Hello there"' in content and MODEL in models


async def test_streaming_with_usage_matches_the_plain_answer(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    plain = await client.chat.completions.create(model=MODEL, messages=HELLO)
    stream = await client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    parts, finish, usage, ids = [], None, None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        else:
            usage = chunk.usage
    assert "".join(parts) == plain.choices[0].message.content
    assert finish == "stop" and len(ids) == 1
    assert usage is not None and plain.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )


async def test_sync_streaming_without_usage(gw: GatewayHarness) -> None:
    key = await gw.vkey()

    def call() -> tuple[str, list[object]]:
        with gw.sync_client(key) as client:
            chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, [c.usage for c in chunks]

    text, usages = await asyncio.to_thread(call)
    assert text.startswith("Simulated openai reply") and all(u is None for u in usages)


async def test_models_list_has_served_models_and_aliases(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(routing={"aliases": {"gpt-4": MODEL, "smart": ["gpt-4o", MODEL]}})
    client = gw.client(await gw.vkey())
    ids = [m.id for m in (await client.models.list()).data]
    assert ids == sorted(ids) and {MODEL, "gpt-4", "smart"} <= set(ids)
    assert (await client.models.retrieve(MODEL)).id == MODEL
    answer = await client.chat.completions.create(model="gpt-4", messages=HELLO)
    assert answer.model == MODEL  # the alias was served by the model it points at
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_a_pool_without_room_is_a_rate_limit_error_with_retry_after(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=[PoolKey("only", rpm=1)])
    client = gw.client(await gw.vkey())
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert 0 < int(headers["retry-after-ms"]) <= 60_000
    assert caught.value.code == "rate_limit_exceeded"
    # the pool said no itself: the provider never saw (nor refused) the second request
    assert gw.sim is not None
    totals = gw.sim.stats()["totals"]
    assert (totals["admitted_requests"], totals["rate_limited"]) == (1, 0)


async def test_a_stream_without_room_fails_before_any_event(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[PoolKey("only", rpm=1)])
    client = gw.client(await gw.vkey())
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)


async def test_a_bad_virtual_key_is_an_authentication_error(gw: GatewayHarness) -> None:
    for key in ("sk-llmr-not-a-real-key", "anything"):
        with pytest.raises(openai.AuthenticationError) as caught:
            await gw.client(key).chat.completions.create(model=MODEL, messages=HELLO)
        assert caught.value.code == "invalid_api_key"
    assert gw.sim is not None and gw.sim.stats()["totals"].get("admitted_requests", 0) == 0


async def test_the_master_key_is_not_a_virtual_key(gw: GatewayHarness) -> None:
    with pytest.raises(openai.AuthenticationError):
        await gw.client(gw.master).models.list()


async def test_request_id_is_echoed_and_names_the_completion(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, extra_headers={"X-Request-ID": "trace-42.a"}
    )
    assert raw.headers["x-request-id"] == "trace-42.a"
    assert raw.parse().id == "chatcmpl-trace-42.a"
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, extra_headers={"X-Request-ID": "bad id with spaces"}
    )
    assert raw.headers["x-request-id"] != "bad id with spaces"
    assert len(raw.headers["x-request-id"]) == 32  # a fresh one instead


async def test_tools_are_passed_through(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    answer = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=tools,
        tool_choice=choice,  # type: ignore[arg-type]
    )
    call = answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call and call[0].function.name == "get_weather"  # type: ignore[union-attr]
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        stream=True,
    )
    names = [
        d.function.name
        async for chunk in stream
        if chunk.choices and chunk.choices[0].delta.tool_calls
        for d in chunk.choices[0].delta.tool_calls
        if d.function
    ]
    assert names == ["get_weather"]


async def test_max_completion_tokens_caps_the_answer(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    answer = await client.chat.completions.create(
        model=MODEL, messages=HELLO, max_completion_tokens=5, temperature=0.2
    )
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert answer.choices[0].finish_reason == "length"
    assert gw.sim is not None and gw.sim.requests()[-1].max_tokens == 5


async def test_a_bad_field_is_a_bad_request_naming_it(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, messages=HELLO, temperature=7)
    assert caught.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "wizard", "content": "x"}],  # type: ignore[misc, list-item]
        )
    assert caught.value.param == "messages[0].role"


async def test_an_unknown_model_is_not_found(gw: GatewayHarness) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await gw.client(await gw.vkey()).chat.completions.create(model="gpt-9", messages=HELLO)
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


async def test_provider_failures_are_502(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config={"faults": {"error_rate": 1.0}}, MAX_ATTEMPTS=2)
    with pytest.raises(openai.InternalServerError) as caught:
        await gw.client(await gw.vkey()).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 502 and caught.value.code == "upstream_server_error"


async def test_provider_timeouts_are_504(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        sim_config={"faults": {"timeout_rate": 1.0, "hang_seconds": 30}},
        MAX_ATTEMPTS=1,
        REQUEST_TIMEOUT_SECONDS=0.3,
    )
    with pytest.raises(openai.InternalServerError) as caught:
        await gw.client(await gw.vkey()).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 504 and caught.value.code == "upstream_timeout"


async def test_a_model_no_key_serves_is_a_404_model_not_found(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    assert info.value.param == "model" and "no-such-model" in info.value.message


async def test_an_outage_of_every_key_is_a_502_with_retry_after_at_once(gw: GatewayHarness) -> None:
    assert gw.sim is not None
    gw.sim.set_faults({"error_rate": 1.0})
    client = gw.client(await gw.vkey())
    for _ in range(3):  # each request tries both keys: three open both circuits
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=MODEL, messages=HELLO)
    calls = len(gw.sim.requests())
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert len(gw.sim.requests()) == calls  # answered at once: nothing went upstream
    assert info.value.status_code == 502 and info.value.code == "upstream_server_error"
    assert 0 < int(info.value.response.headers["Retry-After"]) <= 300  # the next probe
    assert "next probe in" in info.value.message
