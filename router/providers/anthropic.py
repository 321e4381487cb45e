"""Anthropic's Messages API: ``POST {base_url}/v1/messages`` with ``x-api-key`` and
``anthropic-version``; default base URL ``https://api.anthropic.com``.

OpenAI-shaped messages are converted: system and developer messages become ``system``; tool
results become ``tool_result`` blocks in a user turn; assistant tool calls become ``tool_use``
blocks; image parts become image blocks. ``top_k``, ``thinking`` and ``anthropic_metadata`` (the
``metadata`` of the gateway's Messages API) go as they are. ``max_tokens`` is required by
Anthropic: when the request has none, :data:`DEFAULT_MAX_TOKENS` (capped by the model's maximum
output) is sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kernel import jsonio
from kernel.errors import ProviderError
from keys.models import APIKey
from router.providers.anthropic_thinking import THINKING_KEY, StreamThinking, thinking_blocks
from router.providers.base import ProviderAdapter
from router.providers.catalog import max_output_tokens
from router.providers.classify import anthropic_error
from router.providers.ratelimits import RateLimitSnapshot
from router.providers.transport import CallContext, HttpResponse, sse_events
from router.providers.types import (
    ChatRequest,
    ChatResult,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(value: Any) -> str:
    return _FINISH.get(str(value), "other") if value else "stop"


def usage_of(data: Any) -> Usage:
    data = data if isinstance(data, dict) else {}
    fresh = int(data.get("input_tokens") or 0)
    read = int(data.get("cache_read_input_tokens") or 0)
    created = int(data.get("cache_creation_input_tokens") or 0)
    prompt = fresh + read + created
    completion = int(data.get("output_tokens") or 0)
    return Usage(prompt, completion, read, prompt + completion, cache_write_tokens=created)


def _image_block(part: dict[str, Any]) -> dict[str, Any] | None:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url:
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            blocks.append({"type": "text", "text": str(part)})
        elif part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            image = _image_block(part)
            if image is not None:
                blocks.append(image)
        elif part.get("type") in ("image", "document", "tool_use", "tool_result"):
            blocks.append(part)
    return blocks


def _plain(content: Any) -> str:
    return "\n".join(b["text"] for b in _content_blocks(content) if b.get("type") == "text")


def convert_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system text, Anthropic messages) from OpenAI-shaped messages; same-role turns merged."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain(message.get("content")))
            continue
        if role == "tool":
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": str(message.get("tool_call_id", "")),
                    "content": _plain(message.get("content")),
                }
            ]
            role = "user"
        elif role == "assistant":
            blocks = list(message.get(THINKING_KEY) or []) + _content_blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {"arguments": function.get("arguments")}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id", "")),
                        "name": str(function.get("name", "")),
                        "input": arguments,
                    }
                )
        else:
            role = "user"
            blocks = _content_blocks(message.get("content"))
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:  # a turn of plain text goes as a string, as most clients send it
        if len(turn["content"]) == 1 and turn["content"][0].get("type") == "text":
            turn["content"] = turn["content"][0]["text"]
    return ("\n\n".join(s for s in system if s) or None), out


def _tools(extras: dict[str, Any], body: dict[str, Any]) -> None:
    tools = extras.get("tools")
    if tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in tools
            if isinstance(t, dict) and t.get("type", "function") == "function" and "function" in t
        ]
    choice = extras.get("tool_choice")
    mapped: dict[str, Any] | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    if extras.get("parallel_tool_calls") is False and tools:
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    if mapped is not None and tools:
        body["tool_choice"] = mapped


class AnthropicAdapter(ProviderAdapter):
    provider = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def endpoint(self, key: APIKey, request: ChatRequest, *, stream: bool) -> str:
        base = self.base_url(key)
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def auth_headers(self, key: APIKey, secret: str) -> dict[str, str]:
        return {"x-api-key": secret, "anthropic-version": key.api_version or ANTHROPIC_VERSION}

    def payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        system, messages = convert_messages(request.messages)
        limit = max_output_tokens(request.model, DEFAULT_MAX_TOKENS) or DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens
            if request.max_tokens is not None
            else min(DEFAULT_MAX_TOKENS, limit),
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        extras = request.extras
        if extras.get("top_p") is not None:
            body["top_p"] = extras["top_p"]
        stop = extras.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        for name in ("top_k", "thinking"):  # Anthropic's own, from the gateway's Messages API
            if extras.get(name) is not None:
                body[name] = extras[name]
        if extras.get("anthropic_metadata"):
            body["metadata"] = extras["anthropic_metadata"]
        elif extras.get("user"):
            body["metadata"] = {"user_id": str(extras["user"])}
        _tools(extras, body)
        if stream:
            body["stream"] = True
        return body

    def parse_result(self, data: Any, request: ChatRequest, ctx: CallContext) -> ChatResult:
        blocks = data["content"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = [
            ToolCall(str(b["id"]), str(b["name"]), json.dumps(b.get("input") or {}))
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        return ChatResult(
            content=text,
            finish_reason=finish_reason(data.get("stop_reason")),
            usage=usage_of(data.get("usage")),
            model=str(data.get("model") or request.model),
            provider=self.provider,
            tool_calls=calls,
            response_id=data.get("id"),
            stop_sequence=_matched(data),
            thinking=thinking_blocks(blocks),
        )

    async def parse_stream(
        self, response: HttpResponse, request: ChatRequest, ctx: CallContext
    ) -> AsyncIterator[StreamEvent]:
        answer = _StreamAnswer(request.model)
        async for event, data in sse_events(response, ctx):
            payload = self._event(data, ctx)
            kind = payload.get("type") or event
            if kind == "message_start":
                answer.message_start(payload)
            elif kind == "content_block_start":
                answer.block_start(payload)
            elif kind == "content_block_delta":
                text = answer.block_delta(payload)
                if text:
                    yield TextDelta(text)
            elif kind == "message_delta":
                answer.message_delta(payload)
            elif kind == "message_stop":
                yield answer.end(self.provider)
                return
            elif kind == "error":
                overloaded = (payload.get("error") or {}).get("type") == "overloaded_error"
                raise self.error_for(529 if overloaded else 500, payload, data.encode(), None, ctx)

    def _event(self, data: str, ctx: CallContext) -> dict[str, Any]:
        try:
            payload = jsonio.loads(data)
        except ValueError:
            raise self.malformed(ctx, 200, data, None) from None
        if not isinstance(payload, dict):
            raise self.malformed(ctx, 200, data, None)
        return payload

    def error_for(
        self,
        status: int,
        body: Any,
        raw: bytes,
        snapshot: RateLimitSnapshot | None,
        ctx: CallContext,
    ) -> ProviderError:
        return anthropic_error(status, body, raw, snapshot, ctx)


@dataclass
class _StreamAnswer:
    """What a stream's events said so far: the text, the tool-use blocks (by index, their input
    JSON as it arrives), the model, the finish reason and the usage."""

    model: str
    finish: str = "stop"
    stop_sequence: str | None = None
    thinking: StreamThinking = field(default_factory=StreamThinking)
    text: list[str] = field(default_factory=list)
    blocks: dict[int, dict[str, str]] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)

    def message_start(self, payload: dict[str, Any]) -> None:
        message = payload.get("message") or {}
        self.model = str(message.get("model") or self.model)
        self.usage.update(message.get("usage") or {})

    def block_start(self, payload: dict[str, Any]) -> None:
        block = payload.get("content_block") or {}
        self.thinking.start(int(payload.get("index", 0)), block)
        if block.get("type") == "tool_use":
            self.blocks[int(payload.get("index", 0))] = {
                "id": str(block.get("id", "")),
                "name": str(block.get("name", "")),
                "json": "",
            }

    def block_delta(self, payload: dict[str, Any]) -> Any:
        """The text to pass on now, if this delta carries some (else None)."""
        delta = payload.get("delta") or {}
        self.thinking.delta(int(payload.get("index", 0)), delta)
        if delta.get("type") == "text_delta" and delta.get("text"):
            self.text.append(delta["text"])
            return delta["text"]
        if delta.get("type") == "input_json_delta":
            slot = self.blocks.get(int(payload.get("index", 0)))
            if slot is not None:
                slot["json"] += delta.get("partial_json") or ""
        return None

    def message_delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta") or {}
        self.finish = finish_reason(delta.get("stop_reason"))
        self.stop_sequence = _matched(delta)
        self.usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})

    def end(self, provider: str) -> StreamEnd:
        return StreamEnd(
            finish_reason=self.finish,
            usage=usage_of(self.usage) if self.usage else None,
            model=self.model,
            provider=provider,
            content="".join(self.text),
            tool_calls=[
                ToolCall(b["id"], b["name"], b["json"] or "{}")
                for _, b in sorted(self.blocks.items())
            ],
            stop_sequence=self.stop_sequence,
            thinking=self.thinking.end(),
        )


def _matched(data: dict[str, Any]) -> str | None:
    """The stop sequence a message (or a stream's message_delta) ended on, if it did."""
    if data.get("stop_reason") != "stop_sequence" or data.get("stop_sequence") is None:
        return None
    return str(data["stop_sequence"])
