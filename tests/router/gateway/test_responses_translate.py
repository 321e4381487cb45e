"""The Responses request as chat's: what each field becomes, and 400s naming the bad field."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import GatewayError
from router.gateway.responses_translate import parse_responses_request

MODEL = "gpt-4o-mini"


def parse(**body: Any) -> Any:
    return parse_responses_request({"model": MODEL, "input": "Hi", **body})


def test_fields_become_chat_options() -> None:
    params = parse(
        instructions="Be brief.",
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}},
        max_output_tokens=50,
        temperature=0.5,
        top_p=0.9,
        store=True,
        metadata={"a": "b"},
        reasoning={"effort": "low"},
    )
    assert params.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert params.max_tokens == 50 and params.temperature == 0.5
    assert params.extras["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert params.extras["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert params.extras["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "o", "schema": {"type": "object"}},
    }
    assert params.extras["reasoning_effort"] == "low" and params.extras["top_p"] == 0.9
    assert "store" not in params.extras and "metadata" not in params.extras
    assert params.echo["store"] is True and params.echo["metadata"] == {"a": "b"}


def test_parallel_function_calls_are_one_assistant_turn() -> None:
    call = {"type": "function_call", "name": "f", "arguments": "{}"}
    params = parse(
        input=[
            {"role": "user", "content": "Hi"},
            {**call, "call_id": "c1"},
            {**call, "call_id": "c2"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"text": "two"}]},
            {"type": "reasoning", "summary": []},
        ]
    )
    assistant = params.messages[1]
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert [m["role"] for m in params.messages] == ["user", "assistant", "tool", "tool"]
    assert params.messages[3]["content"] == "two"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": 3}, "input"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({"instructions": 3}, "instructions"),
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice.type"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"store": "yes"}, "store"),
        ({"metadata": [1]}, "metadata"),
        ({"model": ""}, "model"),
        ({"temperature": 9}, "temperature"),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse(**body)
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message
