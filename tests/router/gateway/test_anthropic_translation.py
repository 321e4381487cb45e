"""The Messages API's translations per provider: an Anthropic request, checked into the router's
chat request, then each adapter's wire payload (Anthropic: what was sent, OpenAI and Gemini: their
equivalents); and a provider's answer back as an Anthropic ``message``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel.errors import GatewayError
from router.answers import CallSummary, success_answer
from router.gateway.anthropic_request import anthropic_version, parse_messages_request
from router.gateway.anthropic_response import message_body
from router.providers import ChatRequest
from router.providers.anthropic import AnthropicAdapter
from router.providers.gemini import GeminiAdapter
from router.providers.openai import OpenAIAdapter

PNG = "iVBORw0KGgo="
TOOL: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
REQUEST: Any = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Sunny"}],
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ],
    "tools": [TOOL],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "end-user-7"},
}


def chat_request() -> ChatRequest:
    params = parse_messages_request(json.loads(json.dumps(REQUEST)))
    return ChatRequest(
        model=params.model,
        messages=params.messages,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        extras=params.extras,
    )


def test_to_anthropic_the_request_goes_as_it_came() -> None:
    body = AnthropicAdapter(None).payload(chat_request(), stream=False)  # type: ignore[arg-type]
    assert body["system"] == "Be brief."
    for name in ("model", "max_tokens", "tools", "stop_sequences", "temperature", "top_p"):
        assert body[name] == REQUEST[name], name
    for name in ("top_k", "thinking", "metadata"):  # Anthropic's own fields pass through
        assert body[name] == REQUEST[name], name
    assert body["tool_choice"] == REQUEST["tool_choice"]
    user, assistant, result = body["messages"]
    assert user == REQUEST["messages"][0]
    assert assistant["content"] == REQUEST["messages"][1]["content"]  # thinking sent back as is
    assert result["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
        {"type": "text", "text": "Thanks!"},
    ]


def test_to_openai_each_field_has_its_equivalent() -> None:
    body = OpenAIAdapter(None).payload(chat_request(), stream=False)  # type: ignore[arg-type]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    user = body["messages"][1]["content"]
    assert user[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert user[2]["image_url"]["url"] == "https://example.com/a.jpg"
    assert set(body["messages"][2]) == {"role", "content", "tool_calls"}  # no thinking
    call = body["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and json.loads(call["function"]["arguments"]) == {
        "city": "Paris"
    }
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"}
    assert body["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", False)
    assert (body["stop"], body["top_p"], body["max_tokens"]) == (["END"], 0.9, 300)
    for name in ("top_k", "thinking", "metadata", "anthropic_metadata"):  # not OpenAI's
        assert name not in body


def test_to_gemini_each_field_has_its_equivalent() -> None:
    body = GeminiAdapter(None).payload(chat_request(), stream=False)  # type: ignore[arg-type]
    generation = body["generationConfig"]
    assert (generation["topK"], generation["topP"], generation["stopSequences"]) == (
        40,
        0.9,
        ["END"],
    )
    assert generation["maxOutputTokens"] == 300
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert "thinking" not in body and "metadata" not in body
    assert "sig" not in json.dumps(body)  # nor the assistant turn's thinking block


def test_an_openai_answer_comes_back_as_an_anthropic_message() -> None:
    data = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 20},
        },
    }
    request = chat_request()
    result = OpenAIAdapter(None).parse_result(data, request, None)  # type: ignore[arg-type]
    answer = success_answer(result, CallSummary(requested_model=request.model))
    message = message_body(answer, "r1")
    assert (message["id"], message["model"], message["stop_reason"]) == (
        "msg_r1",
        "gpt-4o-mini",
        "tool_use",
    )
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert message["usage"] == {
        "input_tokens": 30,
        "output_tokens": 7,
        "cache_read_input_tokens": 20,
    }


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"system": 7}, "system"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tool_choice": {"type": ["auto"]}}, "tool_choice.type"),  # was a 500 (the fuzz test)
        ({"thinking": {"type": "maybe"}}, "thinking.type"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": []}]}, "messages.0.content"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages.0.content.0.source.type",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}
                ]
            },
            "messages.0.content.0.input",
        ),
    ],
)
def test_a_bad_field_is_named(change: dict[str, Any], param: str) -> None:
    body = {**json.loads(json.dumps(REQUEST)), **change}
    with pytest.raises(GatewayError) as caught:
        parse_messages_request({k: v for k, v in body.items() if v is not None})
    assert caught.value.status == 400 and caught.value.param == param


def test_the_version_header() -> None:
    assert anthropic_version(None) == "2023-06-01"
    assert anthropic_version("2023-06-01") == "2023-06-01"
    with pytest.raises(GatewayError) as caught:
        anthropic_version("latest")
    assert caught.value.param == "anthropic-version"
