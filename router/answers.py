"""The answer of ``send_chat`` / ``send_one_shot``: document 004's dict, extended.

    {"success": True, "content": "...", "model": "gemini-2.0-flash", "tokens": {...},
     "error": None, "error_type": None, "provider": "gemini", "key_id": "flash_01",
     "key": "AIzaSyB...x1y2", "latency_ms": 412.5, "attempts": 2, "retry_after": None, ...}

``key_id`` is the configured id of the key that served the call and ``key`` its masked form; no
answer ever holds a secret. On failure ``success`` is False, ``error`` says what happened and
``error_type`` classifies it (``rate_limited`` comes with ``retry_after`` seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernel.errors import RouterError
from kernel.masking import redact
from router.providers import ChatResult, Usage


@dataclass
class AttemptRecord:
    model: str
    key_id: str
    provider: str
    outcome: str  # success | rate_limited | auth | transient | unreachable | neutral | secret
    error_type: str | None = None
    latency_ms: float = 0.0


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

    @property
    def rotations(self) -> int:
        return max(0, len({(a.model, a.key_id) for a in self.attempts}) - 1)

    @property
    def fallback_used(self) -> bool:
        return bool(self.model) and self.model != self.requested_model


def _base(summary: CallSummary) -> dict[str, Any]:
    return {
        "model": summary.model or summary.requested_model,
        "requested_model": summary.requested_model,
        "provider": summary.provider or None,
        "key_id": summary.key_id or None,
        "key": summary.key or None,
        "latency_ms": round(summary.latency_ms, 3),
        "attempts": len(summary.attempts),
        "rotations": summary.rotations,
        "fallback_used": summary.fallback_used,
        "no_room": summary.no_room,
        "waited_ms": round(summary.waited * 1000, 3),
        "request_id": summary.request_id,
        "degraded": summary.degraded,
    }


def tokens_of(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "prompt": usage.prompt_tokens,
        "completion": usage.completion_tokens,
        "cached": usage.cached_tokens,
        "total": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def success_answer(result: ChatResult, summary: CallSummary) -> dict[str, Any]:
    return {
        "success": True,
        "content": result.content,
        **_base(summary),
        "model": result.model or summary.model,
        "tokens": tokens_of(result.usage),
        "finish_reason": result.finish_reason,
        "tool_calls": [
            {"id": t.id, "name": t.name, "arguments": t.arguments} for t in result.tool_calls
        ],
        "error": None,
        "error_type": None,
        "retry_after": None,
    }


def failure_answer(error: BaseException, summary: CallSummary) -> dict[str, Any]:
    retry_after = getattr(error, "retry_after", None)
    error_type = error.error_type if isinstance(error, RouterError) else "internal_error"
    return {
        "success": False,
        "content": None,
        **_base(summary),
        "tokens": tokens_of(None),
        "finish_reason": None,
        "tool_calls": [],
        "error": redact(str(error)),
        "error_type": error_type,
        "retry_after": round(retry_after, 3) if isinstance(retry_after, int | float) else None,
    }
