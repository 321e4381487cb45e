"""Provider adapters: OpenAI (and compatible hosts), Azure OpenAI, Anthropic and Gemini.

    adapter = get_adapter(key.provider, session)           # session: the router's shared one,
                                                            # or any Transport (router.testing)
    result = await adapter.chat(key, secret, ChatRequest(model="gpt-4o-mini", messages=[...]))
    async for event in adapter.stream(key, secret, request):  # TextDelta ..., then StreamEnd
        ...

Every failure is one class of :mod:`kernel.errors`; see docs/providers.md.
"""

from __future__ import annotations

import aiohttp

from router.providers.anthropic import AnthropicAdapter
from router.providers.base import ProviderAdapter
from router.providers.catalog import (
    ModelInfo,
    context_window,
    max_output_tokens,
    model_info,
    models_fitting,
)
from router.providers.gemini import GeminiAdapter
from router.providers.gemini_quota import parse_gemini_error
from router.providers.openai import AZURE_DEFAULT_API_VERSION, AzureOpenAIAdapter, OpenAIAdapter
from router.providers.ratelimits import (
    LimitState,
    RateLimitBook,
    RateLimitSnapshot,
    parse_anthropic_headers,
    parse_duration,
    parse_openai_headers,
    parse_rate_limits,
)
from router.providers.transport import AiohttpTransport, HttpRequest, HttpResponse, Transport
from router.providers.types import (
    ChatRequest,
    ChatResult,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "azure": AzureOpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def get_adapter(
    provider: str,
    transport: Transport | aiohttp.ClientSession,
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
) -> ProviderAdapter:
    """The adapter of ``provider`` over ``transport``, an aiohttp session or any
    :class:`Transport` (timeouts default to 120 s and 10 s)."""
    try:
        cls = ADAPTERS[provider]
    except KeyError:
        raise ValueError(
            f"unknown provider {provider!r}; expected one of {', '.join(ADAPTERS)}"
        ) from None
    options: dict[str, float] = {}
    if timeout is not None:
        options["timeout"] = timeout
    if connect_timeout is not None:
        options["connect_timeout"] = connect_timeout
    return cls(transport, **options)


__all__ = [
    "ADAPTERS",
    "AZURE_DEFAULT_API_VERSION",
    "AiohttpTransport",
    "AnthropicAdapter",
    "AzureOpenAIAdapter",
    "ChatRequest",
    "ChatResult",
    "GeminiAdapter",
    "HttpRequest",
    "HttpResponse",
    "LimitState",
    "ModelInfo",
    "OpenAIAdapter",
    "ProviderAdapter",
    "RateLimitBook",
    "RateLimitSnapshot",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "Transport",
    "Usage",
    "context_window",
    "get_adapter",
    "max_output_tokens",
    "model_info",
    "models_fitting",
    "parse_anthropic_headers",
    "parse_duration",
    "parse_gemini_error",
    "parse_openai_headers",
    "parse_rate_limits",
]
