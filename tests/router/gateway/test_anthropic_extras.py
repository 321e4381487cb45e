"""The Messages API's stop sequences through the official anthropic SDK: the gateway, the
Anthropic adapter and the provider simulator's Anthropic wire (which ends a reply on the first of
the request's ``stop_sequences`` its text holds, as Anthropic does)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from kernel.errors import GatewayError
from router.answers import CallSummary, success_answer
from router.gateway.anthropic_models import page
from router.gateway.anthropic_request import parse_messages_request
from router.gateway.anthropic_response import message_body
from router.providers import ChatRequest
from router.providers.anthropic import AnthropicAdapter
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness
from tests.router.gateway.test_anthropic_api import CLAUDE, claude_gw, claude_key, client

pytestmark = pytest.mark.integration
HELLO: Any = [{"role": "user", "content": "Hello there"}]
__all__ = ["claude_gw"]


async def test_a_matched_stop_sequence_is_the_stop_reason(claude_gw: GatewayHarness) -> None:
    sdk: anthropic.AsyncAnthropic = client(claude_gw, await claude_gw.vkey())
    stops = ["never-there", " reply"]
    plain = await sdk.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=stops
    )
    assert plain.stop_reason == "stop_sequence" and plain.stop_sequence == " reply"
    assert plain.content[0].type == "text" and plain.content[0].text == "Simulated anthropic"
    async with sdk.messages.stream(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=stops
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == " reply"
    assert final.content[0].type == "text" and final.content[0].text == "Simulated anthropic"


async def test_no_match_is_end_turn(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    message = await sdk.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=["never-there"]
    )
    assert message.stop_reason == "end_turn" and message.stop_sequence is None


WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
THINK: Any = {"type": "enabled", "budget_tokens": 1024}


async def test_thinking_and_tool_use_round_trip(claude_gw: GatewayHarness) -> None:
    """The thinking block comes first in the answer; sent back in the assistant turn, it reaches
    the provider unchanged (the simulator, like Anthropic, refuses the turn without it)."""
    sdk = client(claude_gw, await claude_gw.vkey())
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    tools: Any = {"tools": [WEATHER], "thinking": THINK, "max_tokens": 2048, "model": CLAUDE}
    first = await sdk.messages.create(
        messages=[question], tool_choice={"type": "tool", "name": "get_weather"}, **tools
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    thought = first.content[0]
    assert thought.type == "thinking" and thought.signature and thought.thinking
    result: Any = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "Sunny"}
        ],
    }
    assistant: Any = {"role": "assistant", "content": [b.model_dump() for b in first.content]}
    second = await sdk.messages.create(messages=[question, assistant, result], **tools)
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["thinking", "text"]
    bare: Any = {"role": "assistant", "content": [first.content[1].model_dump()]}
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        await sdk.messages.create(messages=[question, bare, result], **tools)


async def test_a_streamed_answer_carries_its_thinking(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    async with sdk.messages.stream(
        model=CLAUDE, max_tokens=2048, messages=HELLO, thinking=THINK
    ) as stream:
        final = await stream.get_final_message()
    thoughts = [b for b in final.content if b.type == "thinking"]
    assert len(thoughts) == 1 and thoughts[0].signature and thoughts[0].thinking


async def test_the_sdks_models_list_gets_anthropics_shape(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[claude_key(), claude_key("claude-b")])
    key = await gw.vkey()
    sdk = client(gw, key)
    page = await sdk.models.list()
    assert [m.id for m in page.data] == [CLAUDE]
    assert page.data[0].type == "model" and page.data[0].display_name == CLAUDE
    assert page.first_id == page.last_id == CLAUDE and page.has_more is False
    one = await sdk.models.retrieve(CLAUDE)
    assert one.id == CLAUDE and one.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        await sdk.models.retrieve("claude-nothing")
    with pytest.raises(anthropic.AuthenticationError):
        await client(gw, "not-a-key").models.list()
    status, text, _ = await gw.request(
        "GET", "/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200 and text["object"] == "list"  # OpenAI's shape stays
    status, text, _ = await gw.request("GET", "/v1/models?limit=0", headers={"x-api-key": key})
    assert status == 400 and text["type"] == "error"


def test_models_are_paged_by_limit_after_id_and_before_id() -> None:
    names = ["a", "b", "c", "d"]
    first = page(names, {"limit": "2"})
    assert (first["first_id"], first["last_id"], first["has_more"]) == ("a", "b", True)
    second = page(names, {"limit": "2", "after_id": "b"})
    assert [m["id"] for m in second["data"]] == ["c", "d"] and second["has_more"] is False
    back = page(names, {"limit": "1", "before_id": "c"})
    assert [m["id"] for m in back["data"]] == ["b"] and back["has_more"] is True


def test_redacted_thinking_goes_out_and_back_unchanged() -> None:
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    data = {
        "id": "msg_1",
        "model": CLAUDE,
        "content": [redacted, {"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    adapter = AnthropicAdapter(None)  # type: ignore[arg-type]
    request = ChatRequest(messages=HELLO, model=CLAUDE)
    result = adapter.parse_result(data, request, None)  # type: ignore[arg-type]
    message = message_body(success_answer(result, CallSummary(requested_model=CLAUDE)), "r1")
    assert message["content"] == [redacted, {"type": "text", "text": "Hi"}]
    body = {
        "model": CLAUDE,
        "max_tokens": 64,
        "messages": [*HELLO, {"role": "assistant", "content": message["content"]}, *HELLO],
    }
    params = parse_messages_request(body)
    sent = adapter.payload(ChatRequest(messages=params.messages, model=CLAUDE), stream=False)
    assert sent["messages"][1]["content"] == [redacted, {"type": "text", "text": "Hi"}]
    with pytest.raises(GatewayError, match=r"messages\.1\.content\.0\.data"):
        bad = {"role": "assistant", "content": [{"type": "redacted_thinking"}]}
        parse_messages_request({**body, "messages": [*HELLO, bad, *HELLO]})
