"""Body checks of POST /v1/chat/completions: what passes, and the field each refusal names."""

from __future__ import annotations

from typing import Any

import pytest

from kernel.errors import GatewayError
from router.gateway.chat_request import parse_chat_request

USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [USER], **fields}


def test_a_full_request_is_accepted_and_split() -> None:
    tools = [{"type": "function", "function": {"name": "f_1", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f_1", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    params = parse_chat_request(
        body(
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=50,
            max_tokens=999,
            temperature=0.5,
            tools=tools,
            tool_choice="auto",
            response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": {}}},
            stop=["\n"],
            seed=7,
            user="u-1",
            unknown_field="ignored",
        )
    )
    assert params.stream and params.include_usage
    assert params.max_tokens == 50  # max_completion_tokens wins
    assert params.temperature == 0.5 and params.messages == messages
    assert set(params.extras) == {"tools", "tool_choice", "response_format", "stop", "seed", "user"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": ""}, "model"),
        ({"model": 5}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [5]}, "messages[0]"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
            "messages[0].content[0].image_url",
        ),
        ({"messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]}]},
            "messages[0].tool_calls[0].function",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [USER, {"role": "user", "content": "x", "name": ""}]}, "messages[1].name"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"max_tokens": 16_385}, "max_tokens"),  # gpt-4o-mini writes at most 16,384 tokens
        ({"max_completion_tokens": 16_385, "max_tokens": 10}, "max_completion_tokens"),
        ({"model": "my-finetune", "max_tokens": 262_145}, "max_tokens"),  # unknown: the ceiling
        ({"model": "gpt-4o\n"}, "model"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
        ({"logit_bias": {"a": 1}}, "logit_bias.a"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"n": 2}, "n"),
        ({"seed": 2**64}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [1]}, "stop[0]"),
        ({"tools": {}}, "tools"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools[0].function.name",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"logit_bias": []}, "logit_bias"),
        ({"user": 5}, "user"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_chat_request(body(**fields))
    assert caught.value.status == 400 and caught.value.param == param
    assert param in caught.value.message


@pytest.mark.parametrize("raw", [None, [], "text", 5])
def test_a_body_that_is_not_an_object(raw: Any) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_chat_request(raw)
    assert caught.value.param == "body"


def test_completion_tokens_up_to_the_models_output_limit_pass() -> None:
    assert parse_chat_request(body(max_tokens=16_384)).max_tokens == 16_384
    unknown = parse_chat_request(body(model="my-finetune", max_completion_tokens=262_144))
    assert unknown.max_tokens == 262_144
