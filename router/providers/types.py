"""The adapters' common language: one request shape in, one result (or event stream) out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.providers.ratelimits import RateLimitSnapshot

#: Normalised finish reasons (OpenAI's vocabulary).
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "other")


@dataclass
class ChatRequest:
    """A chat call in OpenAI's shape, converted by each adapter to its provider's format.

    ``messages`` are OpenAI chat messages (``role`` system/developer/user/assistant/tool,
    ``content`` a string or content parts, ``name``, ``tool_calls``, ``tool_call_id``).
    ``extras`` are passed through where the provider supports them: ``tools``, ``tool_choice``,
    ``response_format``, ``top_p``, ``stop``, ``seed``, ``presence_penalty``,
    ``frequency_penalty``, ``user``, ``parallel_tool_calls``, ``n`` (docs/providers.md lists the
    mapping per provider).
    ``timeout`` overrides the adapter's request timeout for this call.
    """

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens as the provider reported them. ``prompt_tokens`` includes cached prompt tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    #: Of ``completion_tokens``: the model's reasoning (OpenAI's reasoning tokens, Gemini's thoughts).
    reasoning_tokens: int = 0
    #: Of ``prompt_tokens``: written to the provider's prompt cache (Anthropic bills them apart).
    cache_write_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI gives it


@dataclass
class ChatResult:
    """A provider's answer, normalised."""

    content: str
    finish_reason: str
    usage: Usage
    model: str
    provider: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    rate_limits: RateLimitSnapshot | None = None
    latency_ms: float = 0.0
    response_id: str | None = None
    #: Anthropic's ``stop_sequence``: the stop sequence the answer ended on, when one did.
    stop_sequence: str | None = None
    #: Anthropic's thinking / redacted_thinking blocks, as sent (to be sent back unchanged).
    thinking: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text, in order."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream. ``usage`` is None when the provider reported none: the caller
    then counts the tokens of ``content`` itself."""

    finish_reason: str
    usage: Usage | None
    model: str
    provider: str
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    rate_limits: RateLimitSnapshot | None = None
    latency_ms: float = 0.0
    stop_sequence: str | None = None
    thinking: list[dict[str, Any]] = field(default_factory=list)


StreamEvent = TextDelta | StreamEnd
