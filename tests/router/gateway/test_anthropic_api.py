"""The official anthropic SDK (sync, async, stream, count_tokens, tools) against the gateway's
Anthropic-compatible Messages API, the provider simulator upstream (Anthropic's wire format for
the Claude keys, OpenAI's for a Claude name routed to an OpenAI key)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
import redis.asyncio as aioredis

from kernel.redis_keys import RedisKeys
from kernel.tokens import count_message_tokens
from kernel.usage_record import UsageRecord
from tests.keygen import anthropic_key, gemini_key
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey

pytestmark = pytest.mark.integration
CLAUDE = "claude-sonnet-4-5"
HELLO: Any = [{"role": "user", "content": "Hello there"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
FORCED: Any = {"type": "tool", "name": "get_weather"}


def claude_key(key_id: str = "claude-a", rpm: int | None = 600) -> PoolKey:
    return PoolKey(key_id, rpm=rpm, models=[CLAUDE], secret=anthropic_key(), provider="anthropic")


@pytest.fixture
async def claude_gw(make_gateway: GatewayFactory) -> GatewayHarness:
    return await make_gateway(pool=[claude_key()])


def client(gw: GatewayHarness, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)


def admitted(gw: GatewayHarness) -> tuple[int, int]:
    assert gw.sim is not None
    totals = gw.sim.stats()["totals"]
    return totals.get("admitted_requests", 0), totals.get("rate_limited", 0)


async def test_sync_create_with_x_api_key(claude_gw: GatewayHarness) -> None:
    key = await claude_gw.vkey(name="app")

    def call() -> tuple[anthropic.types.Message, str]:
        with anthropic.Anthropic(base_url=claude_gw.url, api_key=key, max_retries=0) as sync:
            message = sync.messages.create(model=CLAUDE, max_tokens=256, messages=HELLO)
            with sync.messages.stream(model=CLAUDE, max_tokens=256, messages=HELLO) as stream:
                streamed = "".join(stream.text_stream)
            return message, streamed

    message, streamed = await asyncio.to_thread(call)
    assert message.type == "message" and message.role == "assistant" and message.model == CLAUDE
    assert message.id.startswith("msg_") and message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert 'You said: "Hello there"' in message.content[0].text
    assert message.usage.output_tokens == 24 and message.usage.input_tokens > 0
    assert streamed == message.content[0].text
    assert admitted(claude_gw) == (2, 0)


async def test_async_create_with_a_bearer_token_and_a_system_prompt(
    claude_gw: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    key = await claude_gw.vkey()
    bearer = anthropic.AsyncAnthropic(base_url=claude_gw.url, auth_token=key, max_retries=0)
    plain = await bearer.messages.create(model=CLAUDE, max_tokens=256, messages=HELLO)
    system = "You are a terse assistant who answers in one line."
    raw = await bearer.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, system=system
    )
    with_system = await raw.parse()
    assert raw.headers["x-router-provider"] == "anthropic"
    # the system prompt reached the provider: it counted more input tokens
    assert with_system.usage.input_tokens > plain.usage.input_tokens
    blocks = [{"type": "text", "text": system}]
    as_blocks = await bearer.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, system=blocks
    )
    assert as_blocks.usage.input_tokens == with_system.usage.input_tokens


async def test_stream_text_and_final_message(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    plain = await sdk.messages.create(model=CLAUDE, max_tokens=256, messages=HELLO)
    async with sdk.messages.stream(model=CLAUDE, max_tokens=256, messages=HELLO) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert plain.content[0].type == "text" and final.content[0].type == "text"
    assert "".join(pieces) == final.content[0].text == plain.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


async def test_stream_events_are_anthropics(claude_gw: GatewayHarness) -> None:
    key = await claude_gw.vkey()
    body = {"model": CLAUDE, "max_tokens": 64, "messages": HELLO, "stream": True}
    status, text, headers = await claude_gw.request(
        "POST", "/v1/messages", body=body, headers={"x-api-key": key}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert set(events[3:-3]) == {"content_block_delta"}
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_count_tokens(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    counted = await sdk.messages.count_tokens(model=CLAUDE, messages=HELLO, system="Be brief.")
    chat = [{"role": "system", "content": "Be brief."}, *HELLO]
    assert counted.input_tokens == count_message_tokens(chat, CLAUDE)
    with_tools = await sdk.messages.count_tokens(
        model=CLAUDE, messages=HELLO, system="Be brief.", tools=[WEATHER]
    )
    assert with_tools.input_tokens > counted.input_tokens
    assert admitted(claude_gw) == (0, 0)  # counted here: no provider call


async def _tool_round_trip(gw: GatewayHarness, model: str) -> anthropic.types.Message:
    sdk = client(gw, await gw.vkey())
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    first = await sdk.messages.create(
        model=model, max_tokens=256, messages=[question], tools=[WEATHER], tool_choice=FORCED
    )
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {}
    result: Any = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}],
    }
    assistant: Any = {"role": "assistant", "content": [b.model_dump() for b in first.content]}
    second = await sdk.messages.create(
        model=model, max_tokens=256, messages=[question, assistant, result], tools=[WEATHER]
    )
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    return second


async def test_tool_use_round_trip(claude_gw: GatewayHarness) -> None:
    answer = await _tool_round_trip(claude_gw, CLAUDE)
    assert answer.model == CLAUDE
    assert admitted(claude_gw) == (2, 0)


async def test_a_streamed_tool_call(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    async with sdk.messages.stream(
        model=CLAUDE, max_tokens=256, messages=HELLO, tools=[WEATHER], tool_choice=FORCED
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in final.content] == [
        ("tool_use", "get_weather")
    ]


async def test_a_claude_name_routed_to_an_openai_key_is_translated_both_ways(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(routing={"aliases": {CLAUDE: MODEL}})
    sdk = client(gw, await gw.vkey())
    raw = await sdk.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, system="Be brief.", stop_sequences=["\n\n"]
    )
    message = await raw.parse()
    assert raw.headers["x-router-provider"] == "openai" and message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Simulated openai reply")
    answer = await _tool_round_trip(gw, CLAUDE)
    assert answer.model == MODEL
    async with sdk.messages.stream(model=CLAUDE, max_tokens=256, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text.startswith("Simulated openai reply")
    assert admitted(gw) == (4, 0)


async def test_a_claude_name_routed_to_a_gemini_key_is_translated_both_ways(
    make_gateway: GatewayFactory,
) -> None:
    flash = "gemini-2.0-flash"
    pool = [PoolKey("flash", models=[flash], secret=gemini_key(), provider="gemini")]
    gw = await make_gateway(pool=pool, routing={"aliases": {CLAUDE: flash}})
    sdk = client(gw, await gw.vkey())
    message = await sdk.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, system="Be brief.", extra_body={"top_k": 5}
    )
    assert message.model == flash and message.content[0].type == "text"
    assert message.content[0].text.startswith("Simulated gemini reply")
    answer = await _tool_round_trip(gw, CLAUDE)
    assert answer.model == flash
    async with sdk.messages.stream(model=CLAUDE, max_tokens=256, messages=HELLO) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.usage.output_tokens > 0
    assert admitted(gw) == (4, 0)


async def test_a_full_pool_is_a_rate_limit_error_with_retry_after(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=[claude_key("only", rpm=1)])
    sdk = client(gw, await gw.vkey())
    await sdk.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await sdk.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.RateLimitError):
        async with sdk.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()
    assert admitted(gw) == (1, 0)  # the provider never saw (nor refused) the others


async def test_bad_requests_name_the_field(claude_gw: GatewayHarness) -> None:
    key = await claude_gw.vkey()
    status, body, _ = await claude_gw.request(
        "POST",
        "/v1/messages",
        body={"model": CLAUDE, "messages": HELLO},
        headers={"x-api-key": key},
    )
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens:")
    sdk = client(claude_gw, key)
    video: Any = [{"role": "user", "content": [{"type": "video", "url": "x"}]}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await sdk.messages.create(model=CLAUDE, max_tokens=64, messages=video)
    assert "messages.0.content.0.type" in str(caught.value)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await sdk.messages.create(
            model=CLAUDE, max_tokens=64, messages=HELLO, extra_headers={"anthropic-version": "v1"}
        )
    assert "anthropic-version" in str(caught.value)
    with pytest.raises(anthropic.NotFoundError):
        await sdk.messages.create(model="claude-nope", max_tokens=64, messages=HELLO)
    status, wrong, headers = await claude_gw.request(
        "GET", "/v1/messages/count_tokens", headers={"x-api-key": key}
    )
    assert status == 405 and headers["Allow"] == "POST"
    assert wrong["type"] == "error" and wrong["error"]["type"] == "invalid_request_error"
    assert admitted(claude_gw) == (0, 0)


async def test_keys_are_checked(claude_gw: GatewayHarness) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await client(claude_gw, "sk-llmr-not-a-real-key").messages.create(
            model=CLAUDE, max_tokens=64, messages=HELLO
        )
    body: Any = caught.value.body
    assert body["error"]["type"] == "authentication_error"
    status, missing, _ = await claude_gw.request(
        "POST", "/v1/messages", body={"model": CLAUDE, "max_tokens": 9, "messages": HELLO}
    )
    assert status == 401 and missing["error"]["type"] == "authentication_error"
    assert "x-api-key" in missing["error"]["message"]
    limited = client(claude_gw, await claude_gw.vkey(models=["gpt-*"]))
    with pytest.raises(anthropic.PermissionDeniedError):
        await limited.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.PermissionDeniedError):
        await limited.messages.count_tokens(model=CLAUDE, messages=HELLO)


async def test_one_usage_record_per_call_from_the_gateway(
    claude_gw: GatewayHarness, redis_url: str
) -> None:
    sdk = client(claude_gw, await claude_gw.vkey(name="books", user_id="alice", team="ml"))
    plain = await sdk.messages.create(
        model=CLAUDE, max_tokens=64, messages=HELLO, metadata={"user_id": "end-user-7"}
    )
    async with sdk.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
        await stream.get_final_message()
    await sdk.messages.count_tokens(model=CLAUDE, messages=HELLO)
    await claude_gw.gateway.router.flush()
    names = RedisKeys(claude_gw.settings.REDIS_KEY_PREFIX)
    redis = aioredis.from_url(redis_url)
    try:
        entries = await redis.xrange(names.usage_stream)
    finally:
        await redis.aclose()
    records = [UsageRecord.from_json(fields[b"r"]) for _, fields in entries]
    assert len(records) == 2 and sorted(r.stream for r in records) == [False, True]
    assert {(r.source, r.user, r.team, r.model) for r in records} == {
        ("gateway", "alice", "ml", CLAUDE)
    }
    assert all(r.success for r in records)
    assert records[0].completion_tokens == plain.usage.output_tokens


async def test_a_stream_cut_half_way_ends_with_an_error_event(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[claude_key()], sim_config={"faults": {"stream_cut_rate": 1.0}})
    sdk = client(gw, await gw.vkey())
    pieces: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with sdk.messages.stream(model=CLAUDE, max_tokens=256, messages=HELLO) as stream:
            async for text in stream.text_stream:
                pieces.append(text)
    assert pieces, "the text before the cut was delivered"
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"


async def test_an_overloaded_provider_is_an_overloaded_error(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[claude_key()], sim_config={"faults": {"overload_rate": 1.0}})
    sdk = client(gw, await gw.vkey())
    with pytest.raises(anthropic.InternalServerError) as caught:
        await sdk.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    body: Any = caught.value.body
    assert caught.value.status_code == 503 and body["error"]["type"] == "overloaded_error"


async def test_count_tokens_takes_no_tokens_of_the_keys_budget(claude_gw: GatewayHarness) -> None:
    # each count is charged its estimate (prompt + 512 expected) on admission, then given back:
    # ten counts would need over 5,000 tokens of a 2,000-token budget
    sdk = client(claude_gw, await claude_gw.vkey(tpm=2_000))
    for _ in range(10):
        await sdk.messages.count_tokens(model=CLAUDE, messages=HELLO)
    message = await sdk.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    assert message.stop_reason in ("end_turn", "max_tokens")
