"""OpenAI chat completions, OpenAI-compatible hosts (per-key ``base_url``) and Azure OpenAI.

OpenAI: ``POST {base_url}/chat/completions`` with ``Authorization: Bearer``; default base URL
``https://api.openai.com/v1``. Streams ask for ``stream_options.include_usage`` so the last chunk
carries the usage. Reasoning models (o1, o3, o4, gpt-5) take ``max_completion_tokens``.

Azure OpenAI (provider ``azure``): ``base_url`` is the deployment URL
(``https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT``), the key goes in the
``api-key`` header and ``api-version`` comes from ``APIKey.api_version`` (default
:data:`AZURE_DEFAULT_API_VERSION`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kernel import jsonio
from kernel.errors import ConfigError, ProviderError
from keys.models import APIKey
from router.providers.anthropic_thinking import public
from router.providers.base import ProviderAdapter
from router.providers.classify import openai_error
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

AZURE_DEFAULT_API_VERSION = "2024-10-21"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
#: Request fields passed through as they are (OpenAI's own names).
PASS_THROUGH = (
    "tools",
    "tool_choice",
    "response_format",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "parallel_tool_calls",
    "n",
    "reasoning_effort",
    "service_tier",
    "metadata",
    "store",
    "prediction",
    "modalities",
)


def finish_reason(value: Any) -> str:
    return _FINISH.get(str(value), "other") if value else "stop"


def usage_of(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    details = data.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    out = data.get("completion_tokens_details") or {}
    reasoning = int(out.get("reasoning_tokens") or 0) if isinstance(out, dict) else 0
    total = int(data.get("total_tokens") or prompt + completion)
    return Usage(prompt, completion, cached, total, reasoning_tokens=reasoning)


class OpenAIAdapter(ProviderAdapter):
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"

    def endpoint(self, key: APIKey, request: ChatRequest, *, stream: bool) -> str:
        return self.base_url(key) + "/chat/completions"

    def auth_headers(self, key: APIKey, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "messages": public(request.messages)}
        if request.max_tokens is not None:
            field = (
                "max_completion_tokens"
                if request.model.startswith(_REASONING_PREFIXES)
                else "max_tokens"
            )
            body[field] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        body.update(
            {k: v for k, v in request.extras.items() if k in PASS_THROUGH and v is not None}
        )
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse_result(self, data: Any, request: ChatRequest, ctx: CallContext) -> ChatResult:
        choice = data["choices"][0]
        message = choice["message"]
        calls = [
            ToolCall(
                str(c.get("id", "")),
                str(c["function"]["name"]),
                str(c["function"].get("arguments") or ""),
            )
            for c in message.get("tool_calls") or []
        ]
        return ChatResult(
            content=message.get("content") or "",
            finish_reason=finish_reason(choice.get("finish_reason")),
            usage=usage_of(data.get("usage")) or Usage(),
            model=str(data.get("model") or request.model),
            provider=self.provider,
            tool_calls=calls,
            response_id=data.get("id"),
        )

    async def parse_stream(
        self, response: HttpResponse, request: ChatRequest, ctx: CallContext
    ) -> AsyncIterator[StreamEvent]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage: Usage | None = None
        model = request.model
        done = False
        async for _event, data in sse_events(response, ctx):
            if data.strip() == "[DONE]":
                done = True
                break
            chunk = self._chunk(data, ctx)
            model = str(chunk.get("model") or model)
            usage = usage_of(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    text.append(delta["content"])
                    yield TextDelta(delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = calls.setdefault(
                        int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                    )
                    function = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] = function.get("name") or slot["name"]
                    slot["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish = finish_reason(choice["finish_reason"])
        if not done and finish is None:
            return  # ended without [DONE] or a finish reason: the base reports a cut stream
        yield StreamEnd(
            finish_reason=finish or "stop",
            usage=usage,
            model=model,
            provider=self.provider,
            content="".join(text),
            tool_calls=[
                ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())
            ],
        )

    def _chunk(self, data: str, ctx: CallContext) -> dict[str, Any]:
        try:
            chunk = jsonio.loads(data)
        except ValueError:
            raise self.malformed(ctx, 200, data, None) from None
        if not isinstance(chunk, dict):
            raise self.malformed(ctx, 200, data, None)
        if "error" in chunk:
            raise self.error_for(500, chunk, data.encode(), None, ctx)
        return chunk

    def error_for(
        self,
        status: int,
        body: Any,
        raw: bytes,
        snapshot: RateLimitSnapshot | None,
        ctx: CallContext,
    ) -> ProviderError:
        return openai_error(status, body, raw, snapshot, ctx)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: deployment URL as base_url, ``api-key`` header, ``api-version`` query."""

    provider = "azure"
    default_base_url = ""

    def endpoint(self, key: APIKey, request: ChatRequest, *, stream: bool) -> str:
        if not key.base_url:
            raise ConfigError(
                "an Azure OpenAI key needs base_url (the deployment URL)",
                entry=key.key_id,
                field="base_url",
            )
        version = key.api_version or AZURE_DEFAULT_API_VERSION
        return f"{self.base_url(key)}/chat/completions?api-version={version}"

    def auth_headers(self, key: APIKey, secret: str) -> dict[str, str]:
        return {"api-key": secret}
