"""OpenAI-shaped requests become each provider's request body."""

from __future__ import annotations

from typing import Any

from router.providers import ChatRequest
from router.providers.anthropic import AnthropicAdapter, convert_messages
from router.providers.gemini import GeminiAdapter
from router.providers.gemini import convert_messages as gemini_messages
from router.providers.openai import OpenAIAdapter

TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}},
    }
]
CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "Rule one."},
    {"role": "developer", "content": "Rule two."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": "calling",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": 1}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    {"role": "user", "content": "thanks"},
]


def test_openai_passes_extras_and_uses_max_completion_tokens_for_reasoning_models() -> None:
    adapter = OpenAIAdapter(None)  # type: ignore[arg-type]
    body = adapter.payload(
        ChatRequest("gpt-4o", CHAT, max_tokens=5, extras={"tools": TOOLS, "bogus": 1}), stream=True
    )
    assert body["max_tokens"] == 5 and body["tools"] == TOOLS and "bogus" not in body
    assert body["stream_options"] == {"include_usage": True}
    assert "max_completion_tokens" in adapter.payload(
        ChatRequest("o3-mini", CHAT, max_tokens=5), stream=False
    )


def test_anthropic_conversion() -> None:
    system, messages = convert_messages(CHAT)
    assert system == "Rule one.\n\nRule two."
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "AAAA",
    }
    assert messages[1]["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "lookup",
        "input": {"q": 1},
    }
    assert messages[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "42",
    }
    assert messages[2]["content"][1] == {"type": "text", "text": "thanks"}
    body = AnthropicAdapter(None).payload(  # type: ignore[arg-type]
        ChatRequest(
            "claude-3-haiku-20240307",
            CHAT,
            extras={
                "tools": TOOLS,
                "tool_choice": "required",
                "stop": "END",
                "parallel_tool_calls": False,
            },
        ),
        stream=False,
    )
    assert body["max_tokens"] == 4096 and body["stop_sequences"] == ["END"]
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_gemini_conversion() -> None:
    system, contents = gemini_messages(CHAT)
    assert system == {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]}
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    assert contents[1]["parts"][1] == {"functionCall": {"name": "lookup", "args": {"q": 1}}}
    assert contents[2]["parts"][0] == {
        "functionResponse": {"name": "lookup", "response": {"result": 42}}
    }
    body = GeminiAdapter(None).payload(  # type: ignore[arg-type]
        ChatRequest(
            "gemini-2.0-flash",
            CHAT,
            max_tokens=9,
            temperature=0.2,
            extras={
                "tools": TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "lookup"}},
                "response_format": {"type": "json_object"},
                "top_p": 0.5,
            },
        ),
        stream=False,
    )
    assert body["generationConfig"] == {
        "maxOutputTokens": 9,
        "temperature": 0.2,
        "topP": 0.5,
        "responseMimeType": "application/json",
    }
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
    }
