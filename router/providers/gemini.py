"""Gemini's generateContent: ``POST {base_url}/v1beta/models/{model}:generateContent`` (streams:
``:streamGenerateContent?alt=sse``); default base URL ``https://generativelanguage.googleapis.com``.

The key travels in the ``x-goog-api-key`` header, never in the URL (URLs end up in logs and
exception texts). OpenAI-shaped messages are converted: system messages become
``systemInstruction``, assistant turns role ``model``, tool calls ``functionCall`` parts and tool
results ``functionResponse`` parts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from kernel import jsonio
from kernel.errors import ProviderError
from keys.models import APIKey
from router.providers.base import ProviderAdapter
from router.providers.classify import gemini_error
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

API_VERSION = "v1beta"
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "other",
}
_GENERATION = {
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "n": "candidateCount",
}


def finish_reason(value: Any, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    return _FINISH.get(str(value), "other") if value else "stop"


def usage_of(data: Any) -> Usage | None:
    if not isinstance(data, dict) or not data:
        return None
    prompt = int(data.get("promptTokenCount") or 0)
    thoughts = int(data.get("thoughtsTokenCount") or 0)
    completion = int(data.get("candidatesTokenCount") or 0) + thoughts
    cached = int(data.get("cachedContentTokenCount") or 0)
    total = int(data.get("totalTokenCount") or prompt + completion)
    return Usage(prompt, completion, cached, total, reasoning_tokens=thoughts)


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif isinstance(part, dict) and part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                parts.append({"inlineData": {"mimeType": media, "data": data}})
            elif url:
                parts.append({"fileData": {"fileUri": url}})
        elif not isinstance(part, dict):
            parts.append({"text": str(part)})
    return parts


def convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction, contents) from OpenAI-shaped messages; same-role turns merged."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                call_names[str(call.get("id", ""))] = str(function.get("name", ""))
                try:
                    args = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    args = {"arguments": function.get("arguments")}
                parts.append(
                    {"functionCall": {"name": str(function.get("name", "")), "args": args}}
                )
            turn_role = "model"
        elif role == "tool":
            name = message.get("name") or call_names.get(
                str(message.get("tool_call_id", "")), "tool"
            )
            text = "".join(p.get("text", "") for p in _parts(message.get("content")))
            try:
                response = json.loads(text)
            except ValueError:
                response = text
            if not isinstance(response, dict):
                response = {"result": response}
            parts = [{"functionResponse": {"name": str(name), "response": response}}]
            turn_role = "user"
        else:
            parts = _parts(message.get("content"))
            turn_role = "user"
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _tool_config(extras: dict[str, Any], body: dict[str, Any]) -> None:
    tools = [
        t["function"] for t in extras.get("tools") or [] if isinstance(t, dict) and "function" in t
    ]
    if not tools:
        return
    body["tools"] = [
        {
            "functionDeclarations": [
                {
                    k: v
                    for k, v in (
                        ("name", f["name"]),
                        ("description", f.get("description")),
                        ("parameters", f.get("parameters")),
                    )
                    if v
                }
                for f in tools
            ]
        }
    ]
    choice = extras.get("tool_choice")
    config: dict[str, Any] | None = None
    if choice in ("auto", "none"):
        config = {"mode": str(choice).upper()}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    if config is not None:
        body["toolConfig"] = {"functionCallingConfig": config}


class GeminiAdapter(ProviderAdapter):
    provider = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def endpoint(self, key: APIKey, request: ChatRequest, *, stream: bool) -> str:
        base = self.base_url(key)
        if not base.endswith(("/v1beta", "/v1")):
            base += "/" + API_VERSION
        model = request.model.removeprefix("models/")
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{base}/models/{model}:{action}"

    def auth_headers(self, key: APIKey, secret: str) -> dict[str, str]:
        return {"x-goog-api-key": secret}

    def payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        system, contents = convert_messages(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = system
        extras = request.extras
        generation: dict[str, Any] = {}
        if request.max_tokens is not None:
            generation["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        for name, field in _GENERATION.items():
            if extras.get(name) is not None:
                generation[field] = extras[name]
        stop = extras.get("stop")
        if stop:
            generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        self._response_format(extras.get("response_format"), generation)
        if generation:
            body["generationConfig"] = generation
        _tool_config(extras, body)
        return body

    @staticmethod
    def _response_format(fmt: Any, generation: dict[str, Any]) -> None:
        if not isinstance(fmt, dict):
            return
        if fmt.get("type") == "json_object":
            generation["responseMimeType"] = "application/json"
        elif fmt.get("type") == "json_schema":
            generation["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema:
                generation["responseJsonSchema"] = schema

    def _candidate(self, data: dict[str, Any]) -> tuple[str, list[ToolCall], Any]:
        candidates = data.get("candidates") or []
        if not candidates:
            return "", [], None
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(
            p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought")
        )
        calls = [
            ToolCall(
                f"call_{i}",
                str(p["functionCall"].get("name", "")),
                json.dumps(p["functionCall"].get("args") or {}),
            )
            for i, p in enumerate(parts)
            if isinstance(p, dict) and "functionCall" in p
        ]
        return text, calls, candidate.get("finishReason")

    def parse_result(self, data: Any, request: ChatRequest, ctx: CallContext) -> ChatResult:
        if not isinstance(data, dict):
            raise TypeError("answer is not an object")
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise self.filtered(ctx, None, f"prompt blocked ({blocked})")
        if "candidates" not in data:
            raise KeyError("candidates")
        text, calls, finish = self._candidate(data)
        return ChatResult(
            content=text,
            finish_reason=finish_reason(finish, bool(calls)),
            usage=usage_of(data.get("usageMetadata")) or Usage(),
            model=str(data.get("modelVersion") or request.model),
            provider=self.provider,
            tool_calls=calls,
            response_id=data.get("responseId"),
        )

    async def parse_stream(
        self, response: HttpResponse, request: ChatRequest, ctx: CallContext
    ) -> AsyncIterator[StreamEvent]:
        text: list[str] = []
        calls: list[ToolCall] = []
        finish: Any = None
        usage: Usage | None = None
        model = request.model
        async for _event, data in sse_events(response, ctx):
            try:
                chunk = jsonio.loads(data)
            except ValueError:
                raise self.malformed(ctx, 200, data, None) from None
            if not isinstance(chunk, dict):
                raise self.malformed(ctx, 200, data, None)
            if "error" in chunk:
                status = int((chunk.get("error") or {}).get("code") or 500)
                raise self.error_for(status, chunk, data.encode(), None, ctx)
            blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                raise self.filtered(ctx, None, f"prompt blocked ({blocked})")
            model = str(chunk.get("modelVersion") or model)
            usage = usage_of(chunk.get("usageMetadata")) or usage
            piece, new_calls, chunk_finish = self._candidate(chunk)
            calls.extend(
                ToolCall(f"call_{len(calls) + i}", c.name, c.arguments)
                for i, c in enumerate(new_calls)
            )
            if piece:
                text.append(piece)
                yield TextDelta(piece)
            finish = chunk_finish or finish
        if finish is None:
            return  # no finish reason: the stream was cut (the base raises)
        yield StreamEnd(
            finish_reason=finish_reason(finish, bool(calls)),
            usage=usage,
            model=model,
            provider=self.provider,
            content="".join(text),
            tool_calls=calls,
        )

    def error_for(
        self,
        status: int,
        body: Any,
        raw: bytes,
        snapshot: RateLimitSnapshot | None,
        ctx: CallContext,
    ) -> ProviderError:
        return gemini_error(status, body, raw, snapshot, ctx)
