"""The gateway makes a model substitution visible: ``x-router-fallback: <asked> -> <served>`` and
``x-router-fallback-reason`` on an answer served by a fallback model (absent otherwise): whole
answers, streams on the chat, Responses and Messages routes (text first, or a tool call only) and
embeddings; and a refusal about limits names the model the caller asked for. Official OpenAI and
Anthropic SDKs and raw HTTP; real gateway, real Redis, the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import anthropic
import openai
import pytest

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness, PoolKey, assert_error_shape, chat_body

pytestmark = pytest.mark.integration

ASKED, FALLBACK = "gpt-4o", "gpt-4o-mini"
HELLO: Any = [{"role": "user", "content": "Hello!"}]
FELL_BACK = {"x-router-fallback": f"{ASKED} -> {FALLBACK}", "x-router-fallback-reason": "fallback"}


async def fallback_gateway(make_gateway: GatewayFactory, model: str = ASKED) -> GatewayHarness:
    """``model``'s one key takes one request a minute; ``FALLBACK`` serves after it."""
    return await make_gateway(
        pool=[PoolKey("big", rpm=1, models=[model]), PoolKey("small", models=[FALLBACK])],
        routing={"fallbacks": {model: [FALLBACK]}},
    )


def fallback_of(headers: Any) -> dict[str, str]:
    return {name: headers[name] for name in FELL_BACK if name in headers}


async def test_an_answer_from_a_fallback_model_says_so_in_its_headers(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        pool=[PoolKey("big", rpm=1, models=[ASKED]), PoolKey("small", models=[FALLBACK])],
        routing={"fallbacks": {ASKED: [FALLBACK]}},
    )
    client = gw.client(await gw.vkey())
    first = await client.chat.completions.with_raw_response.create(model=ASKED, messages=HELLO)
    assert "x-router-fallback" not in first.headers
    assert first.parse().model == ASKED
    second = await client.chat.completions.with_raw_response.create(model=ASKED, messages=HELLO)
    assert second.headers["x-router-fallback"] == f"{ASKED} -> {FALLBACK}"
    assert second.headers["x-router-fallback-reason"] == "fallback"
    assert second.parse().model == FALLBACK


async def test_a_refusal_about_limits_names_the_model_asked_for(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        pool=[PoolKey("g1", rpm=1, models=[FALLBACK])], routing={"aliases": {ASKED: FALLBACK}}
    )
    client = gw.client(await gw.vkey())
    await client.chat.completions.create(model=ASKED, messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=ASKED, messages=HELLO)
    assert f"'{ASKED}'" in caught.value.message
    status, body, headers = await gw.request(
        "POST", "/v1/chat/completions", token=await gw.vkey(), body=chat_body(model=ASKED)
    )
    assert status == 429 and f"'{ASKED}'" in assert_error_shape(body)["message"]
    assert "x-router-fallback" not in headers


def stream(gw: GatewayHarness, key: str, route: str) -> AbstractAsyncContextManager[Any]:
    """A stream of ``route``, as its official SDK opens it (headers readable)."""
    if route == "messages":
        claude = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)
        return claude.messages.with_streaming_response.create(
            model=ASKED, max_tokens=64, messages=HELLO, stream=True
        )
    client = gw.client(key)
    if route == "responses":
        return client.responses.with_streaming_response.create(
            model=ASKED, input="Hello!", stream=True
        )
    return client.chat.completions.with_streaming_response.create(
        model=ASKED, messages=HELLO, stream=True
    )


async def drained(lines: AsyncIterator[str]) -> str:
    return "\n".join([line async for line in lines])


async def test_a_stream_from_a_fallback_model_says_so_in_its_headers_on_every_route(
    make_gateway: GatewayFactory,
) -> None:
    gw = await fallback_gateway(make_gateway)
    key = await gw.vkey()
    seen = []
    for route in ("chat", "chat", "responses", "messages"):  # the first: the asked model's
        async with stream(gw, key, route) as response:
            seen.append((fallback_of(response.headers), await drained(response.iter_lines())))
    (asked, asked_text), *fell_back = seen
    assert asked == {} and f'"{ASKED}"' in asked_text
    assert [headers for headers, _ in fell_back] == [FELL_BACK] * 3
    assert all("Simulated openai" in text for _, text in fell_back)  # the text came after them
    assert gw.sim is not None and [r.key_id for r in gw.sim.requests()] == ["big"] + ["small"] * 3


async def test_a_stream_with_no_text_before_its_answer_says_so_too(
    make_gateway: GatewayFactory,
) -> None:
    gw = await fallback_gateway(make_gateway)
    client = gw.client(await gw.vkey())
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    await client.chat.completions.create(model=ASKED, messages=HELLO)  # the asked key's one
    async with client.chat.completions.with_streaming_response.create(
        model=ASKED, messages=HELLO, tools=tools, tool_choice="required", stream=True
    ) as response:
        headers, body = fallback_of(response.headers), await drained(response.iter_lines())
        served = [response.headers.get(f"x-router-{name}") for name in ("provider", "attempts")]
    assert headers == FELL_BACK and served == ["openai", "1"]  # from the answer, as a whole one's
    chunks = [json.loads(line[6:]) for line in body.splitlines() if line[6:].startswith("{")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any(d.get("content") for d in deltas)  # no text: the answer was the first event
    assert [d["tool_calls"][0]["function"]["name"] for d in deltas if d.get("tool_calls")] == [
        "get_weather"
    ]


async def test_an_embedding_from_a_fallback_model_says_so(make_gateway: GatewayFactory) -> None:
    small, large = "text-embedding-3-small", "text-embedding-3-large"
    gw = await make_gateway(
        pool=[PoolKey("e-small", rpm=1, models=[small]), PoolKey("e-large", models=[large])],
        routing={"fallbacks": {small: [large]}},
    )
    client = gw.client(await gw.vkey())
    first = await client.embeddings.with_raw_response.create(model=small, input="hello")
    second = await client.embeddings.with_raw_response.create(model=small, input="hello")
    assert fallback_of(first.headers) == {} and first.parse().model == small
    assert fallback_of(second.headers) == {
        "x-router-fallback": f"{small} -> {large}",
        "x-router-fallback-reason": "fallback",
    }
    assert second.parse().model == large
