"""The answer of ``send_chat`` / ``send_one_shot``: document 004's dict, extended, and its type.

    {"success": True, "content": "...", "model": "gemini-2.0-flash", "tokens": {...},
     "error": None, "error_type": None, "provider": "gemini", "key_id": "flash_01",
     "key": "AIzaSyB...x1y2", "latency_ms": 412.5, "attempts": 2, "retry_after": None, ...}

``key_id`` is the configured id of the key that served the call and ``key`` its masked form; no
answer ever holds a secret. On failure ``success`` is False, ``error`` says what happened and
``error_type`` classifies it (``rate_limited`` comes with ``retry_after`` seconds).

:class:`Answer` is that dict's type (a ``TypedDict``: it is still a plain dict, read as
``answer["success"]``): every field the README's answer table documents, the ones every answer
carries required, the ones some answers carry (a conversation's, a stream's) ``NotRequired``.
A stream yields :data:`StreamEvent` s: ``DeltaEvent`` s, then one ``DoneEvent`` (the answer).

No ``from __future__ import annotations`` here: with it, Python 3.11's ``TypedDict`` does not see
``NotRequired`` at run time, and ``Answer.__optional_keys__`` would be empty.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from conversation.results import NotSavedReason
from kernel.masking import redact
from kernel.usage_record import Attribution, UsageRecord
from router.error_types import ErrorType, error_type_of
from router.providers import ChatResult, Usage


class Tokens(TypedDict):
    """Tokens as the provider counted them (``total`` is prompt + completion when it gave none)."""

    prompt: int
    completion: int
    cached: int
    total: int


class AnswerToolCall(TypedDict):
    """A tool call the model asked for; ``arguments`` is JSON text, as OpenAI gives it."""

    id: str
    name: str
    arguments: str


#: Why an answer came from another model than the one asked for (README "Python API" table):
#: ``fallback`` (the asked model failed, had no room or no key: a model of its fallback chain
#: served), ``context_window`` (the prompt did not fit its window: a larger-window model served).
FallbackReason = Literal["fallback", "context_window"]


class Answer(TypedDict):
    """The answer of ``send_one_shot``/``send_chat``/``complete`` (README "Python API" table)."""

    success: bool
    content: str | None
    error: str | None
    error_type: ErrorType | None
    retry_after: float | None
    tokens: Tokens
    finish_reason: str | None
    tool_calls: list[AnswerToolCall]
    # the call: who served it and what it took
    model: str
    requested_model: str
    provider: str | None
    key_id: str | None
    key: str | None
    latency_ms: float
    attempts: int
    rotations: int
    fallback_used: bool
    #: Set when a fallback or larger-window model served instead of the one asked for (an
    #: alias's own target is not a fallback); None otherwise.
    fallback_reason: FallbackReason | None
    no_room: int
    waited_ms: float
    request_id: str
    degraded: bool
    #: USD the call cost at the served model's price (README "Prices"); None when unknown.
    cost: float | None
    #: A stream that failed once begun: whether text came (``content`` holds it).
    partial: NotRequired[bool]
    #: A stream's successful answer: False when the provider reported no usage (tokens counted).
    usage_reported: NotRequired[bool]
    #: Anthropic's answers that ended on one of the request's stop sequences: that sequence.
    stop_sequence: NotRequired[str]
    #: Anthropic's answers with ``thinking`` enabled: the thinking blocks, as sent.
    thinking: NotRequired[list[dict[str, Any]]]
    #: ``send_chat``/``stream_chat`` only: the conversation and whether the turn was stored.
    conversation_id: NotRequired[str]
    conversation_saved: NotRequired[bool]
    conversation_seq: NotRequired[int]
    conversation_trimmed: NotRequired[int]
    conversation_error: NotRequired[str | None]
    conversation_error_type: NotRequired[NotSavedReason | None]


class DeltaEvent(TypedDict):
    """A piece of a stream's text, in order; the first also says which model serves it."""

    type: Literal["delta"]
    content: str
    #: The first delta only: the model serving the stream (the pool's name for it) and why it is
    #: not the one asked for, as the answer's ``fallback_reason`` (the gateway's headers).
    model: NotRequired[str]
    fallback_reason: NotRequired[FallbackReason | None]
    #: The first delta only, as the answer's: the provider serving it, the keys tried to get it
    #: (this one included), and whether it runs on local limits (Redis unreachable).
    provider: NotRequired[str]
    attempts: NotRequired[int]
    degraded: NotRequired[bool]


class DoneEvent(Answer):
    """A stream's last event: the answer, with ``type``."""

    type: Literal["done"]


StreamEvent = DeltaEvent | DoneEvent


def done_event(answer: Answer) -> DoneEvent:
    return {"type": "done", **answer}


@dataclass
class AttemptRecord:
    model: str
    key_id: str
    provider: str
    outcome: str  # success | rate_limited | auth | transient | unreachable | neutral | secret
    error_type: str | None = None  # the error's (router/error_types.py)
    latency_ms: float = 0.0
    #: Monotonic time the call was sent.
    started: float = 0.0


@dataclass
class CallSummary:
    """What a request went through, for its answer and metrics."""

    requested_model: str
    model: str = ""
    provider: str = ""
    key_id: str = ""
    key: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    latency_ms: float = 0.0
    request_id: str = ""
    #: Times a model had no room locally, so the call went elsewhere or waited: 429s avoided.
    no_room: int = 0
    #: Seconds spent waiting for room.
    waited: float = 0.0
    #: Served in degraded mode: reserved on the process's local store (kernel/failover.py).
    degraded: bool = False
    #: Whom the call is for (usage records, budgets).
    attribution: Attribution = field(default_factory=Attribution)
    stream: bool = False
    #: Monotonic time the call began.
    started: float = field(default_factory=time.monotonic)
    #: USD, None when the price is unknown (set once the call's cost is known).
    cost: float | None = None
    #: Set by dispatch when a fallback or larger-window model served (see FallbackReason).
    fallback_reason: FallbackReason | None = None
    #: The call's usage record was written (with its settle): nothing left to record.
    recorded: bool = False
    #: The record made at the settle (also when the settle could not write it).
    usage_record: UsageRecord | None = None

    @property
    def rotations(self) -> int:
        return max(0, len({(a.model, a.key_id) for a in self.attempts}) - 1)

    @property
    def fallback_used(self) -> bool:
        return bool(self.model) and self.model != self.requested_model


def tokens_of(usage: Usage | None) -> Tokens:
    usage = usage or Usage()
    return {
        "prompt": usage.prompt_tokens,
        "completion": usage.completion_tokens,
        "cached": usage.cached_tokens,
        "total": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def success_answer(result: ChatResult, summary: CallSummary) -> Answer:
    answer = _answer(
        summary,
        success=True,
        content=result.content,
        model=result.model or summary.model,
        tokens=tokens_of(result.usage),
        finish_reason=result.finish_reason,
        tool_calls=[
            {"id": t.id, "name": t.name, "arguments": t.arguments} for t in result.tool_calls
        ],
    )
    if result.stop_sequence is not None:
        answer["stop_sequence"] = result.stop_sequence
    if result.thinking:
        answer["thinking"] = result.thinking
    return answer


#: Failures about limits: their message names the model the caller asked for.
LIMIT_ERROR_TYPES = frozenset(
    {"rate_limited", "no_keys_available", "budget_exceeded", "request_too_large"}
)


def _naming_the_model(message: str, error_type: str, requested: str) -> str:
    """A limits failure's message with the model the caller asked for named (the limit may have
    bound a fallback or alias target: the caller knows the model by the name it gave)."""
    if error_type not in LIMIT_ERROR_TYPES or not requested or f"'{requested}'" in message:
        return message
    return f"{message} (model asked for: '{requested}')"


def failure_answer(error: BaseException, summary: CallSummary) -> Answer:
    retry_after = getattr(error, "retry_after", None)
    error_type = error_type_of(error)
    return _answer(
        summary,
        success=False,
        model=summary.model or summary.requested_model,
        error=redact(_naming_the_model(str(error), error_type, summary.requested_model)),
        error_type=error_type,
        retry_after=round(retry_after, 3) if isinstance(retry_after, int | float) else None,
    )


def _answer(
    summary: CallSummary,
    *,
    success: bool,
    model: str,
    content: str | None = None,
    tokens: Tokens | None = None,
    finish_reason: str | None = None,
    tool_calls: list[AnswerToolCall] | None = None,
    error: str | None = None,
    error_type: ErrorType | None = None,
    retry_after: float | None = None,
) -> Answer:
    """Every required field of an answer: the outcome given, the call's fields from ``summary``."""
    return {
        "success": success,
        "content": content,
        "model": model,
        "requested_model": summary.requested_model,
        "provider": summary.provider or None,
        "key_id": summary.key_id or None,
        "key": summary.key or None,
        "latency_ms": round(summary.latency_ms, 3),
        "attempts": len(summary.attempts),
        "rotations": summary.rotations,
        "fallback_used": summary.fallback_used,
        "fallback_reason": summary.fallback_reason if success else None,
        "no_room": summary.no_room,
        "waited_ms": round(summary.waited * 1000, 3),
        "request_id": summary.request_id,
        "degraded": summary.degraded,
        "cost": summary.cost,
        "tokens": tokens or tokens_of(None),
        "finish_reason": finish_reason,
        "tool_calls": tool_calls or [],
        "error": error,
        "error_type": error_type,
        "retry_after": retry_after,
    }
