"""The Responses API (``POST /v1/responses``) with the official openai SDK, simulator upstream."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey

pytestmark = pytest.mark.integration

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def sent(gw: GatewayHarness) -> list[dict[str, Any]]:
    """The messages the provider received in its last request."""
    assert gw.sim is not None
    return gw.sim.requests()[-1].messages


async def test_a_string_input(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    response = await client.responses.create(model=MODEL, input="Hello there", store=False)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.model == MODEL
    assert 'You said: "Hello there"' in response.output_text
    assert response.output[0].type == "message"
    usage = response.usage
    assert usage is not None and usage.output_tokens == 24
    assert usage.total_tokens == usage.input_tokens + 24 > 24
    assert usage.input_tokens_details.cached_tokens == 0
    assert sent(gw) == [{"role": "user", "content": "Hello there"}]


async def test_items_and_instructions(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    response = await client.responses.create(
        model=MODEL,
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "First question"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "First answer"}],
            },
            {"role": "user", "content": "Second question"},
        ],
        max_output_tokens=5,
        metadata={"team": "docs"},
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 5
    assert response.output[0].type == "message" and response.output[0].status == "incomplete"
    assert response.instructions == "Be brief." and response.metadata == {"team": "docs"}
    assert [(m["role"], m["content"]) for m in sent(gw)] == [
        ("system", "Be brief."),
        ("developer", "Answer in English."),
        ("user", [{"type": "text", "text": "First question"}]),
        ("assistant", "First answer"),
        ("user", "Second question"),
    ]


async def test_a_function_tool_round_trip(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await client.responses.create(
        model=MODEL,
        input=[question],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id and call.arguments == "{}"
    assert first.tools[0].type == "function" and first.tools[0].name == "get_weather"
    second = await client.responses.create(
        model=MODEL,
        input=[
            question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.status == "completed" and second.output_text
    received = sent(gw)
    assert [m["role"] for m in received] == ["user", "assistant", "tool"]
    assert received[1]["tool_calls"][0]["id"] == call.call_id
    assert received[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert received[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"}


async def test_streaming_events(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    plain = await client.responses.create(model=MODEL, input="Hello there")
    events = [
        e
        async for e in await client.responses.create(model=MODEL, input="Hello there", stream=True)
    ]
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == plain.output_text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed" and final.output_text == text
    assert final.usage is not None and plain.usage is not None
    assert final.usage.output_tokens == plain.usage.output_tokens == 24
    assert final.usage.input_tokens == plain.usage.input_tokens


async def test_streaming_a_function_call(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    async with client.responses.stream(
        model=MODEL,
        input="Weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"


class Forecast(BaseModel):
    city: str
    days: list[int]
    sunny: bool
    unit: str


async def test_structured_output_with_parse(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    response = await client.responses.parse(
        model=MODEL, input="Forecast for Paris", text_format=Forecast
    )
    parsed = response.output_parsed
    assert isinstance(parsed, Forecast) and len(parsed.days) == 1
    chat = await client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Forecast for Paris"}],
        response_format=Forecast,
    )
    assert isinstance(chat.choices[0].message.parsed, Forecast)


async def test_previous_response_id_is_refused(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_123")
    assert caught.value.param == "previous_response_id"
    assert "stateless" in caught.value.message and "whole conversation" in caught.value.message
    assert gw.sim is not None and gw.sim.requests() == []


async def test_other_tool_types_are_refused_naming_them(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="Hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type" and "web_search" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=MODEL, input=[{"role": "user", "content": [{"type": "input_audio"}]}]
        )
    assert caught.value.param == "input[0].content[0].type"


async def test_a_full_pool_is_a_rate_limit_error(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[PoolKey("only", rpm=1)])
    client = gw.client(await gw.vkey())
    await client.responses.create(model=MODEL, input="Hi")
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model=MODEL, input="Hi", stream=stream)
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert gw.sim is not None
    totals = gw.sim.stats()["totals"]
    assert (totals["admitted_requests"], totals["rate_limited"]) == (1, 0)


async def test_a_stream_cut_after_text_ends_with_an_error_event(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        sim_config={"faults": {"stream_cut_rate": 1.0}, "completion_tokens": 60}
    )
    client = gw.client(await gw.vkey())
    stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
    kinds: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for event in stream:
            kinds.append(event.type)
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds
    assert caught.value.body is not None
