"""What the simulator's engine decides on: a call reduced to what it needs, the outcomes
:meth:`~router.simulator.engine.Engine.evaluate` returns, and the record of a received request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.tokens import content_text
from router.simulator.config import FaultConfig, SimKey
from router.simulator.content import Reply
from router.simulator.limits import LimitView, Rejection, Ticket
from router.simulator.stats import UsageStats


@dataclass
class Call:
    """A provider request reduced to what the simulator needs. ``messages`` are OpenAI-shaped."""

    provider: str
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    tool_names: tuple[str, ...] = ()
    forced_tool: str | None = None
    completion_tokens: int | None = None
    #: OpenAI's ``response_format``: the JSON Schema the answer must match ({} for json_object)
    response_schema: dict[str, Any] | None = None
    #: An embeddings call: its texts (``messages`` holds them as user messages, for the log).
    inputs: tuple[str, ...] | None = None
    dimensions: int | None = None
    #: How the vectors are answered: OpenAI's float | base64, Gemini's embedContent | batch...
    embed_format: str = ""
    #: Anthropic's ``stop_sequences``: the reply ends before the first one its text contains.
    stop_sequences: tuple[str, ...] = ()
    #: Anthropic's ``thinking`` enabled: the answer starts with a thinking block.
    thinking: bool = False


# -- outcomes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Denied:
    reason: str  # missing | invalid | revoked
    secret: str = ""


@dataclass(frozen=True)
class NotFound:
    model: str


@dataclass(frozen=True)
class Invalid:
    reason: str  # context_length | max_tokens
    prompt_tokens: int
    limit: int
    max_tokens: int | None


@dataclass(frozen=True)
class Fault:
    kind: str  # spurious_429 | overload | server_error | reset
    status: int
    view: LimitView | None = None


@dataclass(frozen=True)
class Limited:
    rejection: Rejection
    view: LimitView | None


@dataclass
class Admitted:
    key: SimKey
    prompt_tokens: int
    reply: Reply
    view: LimitView | None
    ticket: Ticket
    filtered: bool = False
    fault: str | None = None  # timeout | malformed | stream_cut
    faults: FaultConfig = field(default_factory=FaultConfig)
    key_stats: UsageStats | None = None
    group_stats: UsageStats | None = None
    window_index: tuple[int, int] = (0, 0)
    request_id: str = ""


Outcome = Denied | NotFound | Invalid | Fault | Limited | Admitted


@dataclass
class RequestRecord:
    """One received request, for tests that check what a provider was sent."""

    time: float
    provider: str
    model: str
    key_id: str | None
    key_fingerprint: str | None
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    outcome: str = ""
    prompt_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "provider": self.provider,
            "model": self.model,
            "key_id": self.key_id,
            "key_fingerprint": self.key_fingerprint,
            "messages": [
                {"role": m.get("role"), "content": content_text(m.get("content"))}
                for m in self.messages
            ],
            "stream": self.stream,
            "max_tokens": self.max_tokens,
            "outcome": self.outcome,
            "prompt_tokens": self.prompt_tokens,
        }
