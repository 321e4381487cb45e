"""One turn append, as the ``append_turn`` script sees it: the arguments sent and the reply read.

Pure logic, no I/O: :class:`~conversation.store.ConversationStore` runs the script. The script
answers a status (``ok``, ``duplicate``, ``conflict``, ``too_large``) with the conversation's
counters; :func:`read_reply` turns that into an :class:`~conversation.results.AppendResult` whose
error says what happened in words a caller can act on (the conversation, the cap, the setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conversation.history import COUNTING_MODEL, message_cost, tokenizer_id
from conversation.models import Message
from conversation.results import AppendResult, NotSavedReason
from kernel.log import get_logger
from kernel.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class ConversationLimits:
    """TTL and size caps, from the CONVERSATION_* settings."""

    ttl_seconds: int
    max_messages: int
    max_bytes: int
    overflow: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationLimits:
        return cls(
            ttl_seconds=settings.CONVERSATION_TTL_SECONDS,
            max_messages=settings.CONVERSATION_MAX_MESSAGES,
            max_bytes=settings.CONVERSATION_MAX_BYTES,
            overflow=settings.CONVERSATION_OVERFLOW,
        )


@dataclass(frozen=True)
class TurnWrite:
    """A checked turn to store: messages (none when only the system prompt changes) and options.

    ``system_prompt`` None keeps the stored prompt, ``""`` removes it. ``turn_id`` ``""`` means no
    idempotency record (a system-prompt-only write).
    """

    conv_id: str
    messages: list[Message]
    turn_id: str
    model: str | None = None
    provider: str | None = None
    system_prompt: str | None = None
    expected_seq: int | None = None

    @property
    def retry_id(self) -> str | None:
        """The id to append this turn again with (None for a system-prompt-only write)."""
        return self.turn_id or None

    def script_args(self, limits: ConversationLimits) -> list[str | int]:
        """ARGV of ``append_turn.lua``: limits, options, tokenizer, then (count, body) pairs."""
        counting_model = self.model or COUNTING_MODEL
        args: list[str | int] = [
            limits.ttl_seconds,
            limits.max_messages,
            limits.max_bytes,
            limits.overflow,
            -1 if self.expected_seq is None else self.expected_seq,
            self.turn_id,
            self.conv_id,
            "0" if self.system_prompt is None else "1",
            self.system_prompt or "",
            self.model or "",
            self.provider or "",
            len(self.messages),
            tokenizer_id(counting_model),
        ]
        for message in self.messages:
            args += [message_cost(message.to_provider(), counting_model), message.body()]
        return args


def read_reply(write: TurnWrite, reply: list[Any], limits: ConversationLimits) -> AppendResult:
    """The AppendResult of the script's reply ``{status, first, last, count, tokens, ...}``."""
    status, first, last, count, tokens, size, trimmed, cap, needed = reply
    fields: dict[str, Any] = {
        "message_count": int(count),
        "total_tokens": int(tokens),
        "bytes": int(size),
        "turn_id": write.retry_id,
    }
    if status in ("ok", "duplicate"):
        return AppendResult(
            write.conv_id,
            True,
            int(first),
            int(last),
            trimmed=int(trimmed),
            duplicate=status == "duplicate",
            **fields,
        )
    if status == "conflict":
        reason = (
            f"conversation {write.conv_id!r} changed since it was read (expected last sequence "
            f"{write.expected_seq}, now {int(last)}); the turn was not saved"
        )
        fields.update(first_seq=int(last), last_seq=int(last))
        return not_saved(write.conv_id, "conversation_conflict", reason, **fields)
    reason = too_large_reason(write.conv_id, str(cap), int(needed), limits)
    return not_saved(write.conv_id, "conversation_too_large", reason, **fields)


def too_large_reason(conv_id: str, cap: str, needed: int, limits: ConversationLimits) -> str:
    if cap == "messages":
        what = f"{needed} messages would exceed CONVERSATION_MAX_MESSAGES={limits.max_messages}"
    else:
        what = f"{needed} bytes would exceed CONVERSATION_MAX_BYTES={limits.max_bytes}"
    hint = (
        "truncate it or set CONVERSATION_OVERFLOW=trim"
        if limits.overflow == "error"
        else "this turn alone does not fit"
    )
    return f"conversation {conv_id!r} is too large: {what} ({hint}); the turn was not saved"


def not_saved(conv_id: str, error_type: NotSavedReason, error: str, **fields: Any) -> AppendResult:
    """A not-saved result, logged (the conversation and the reason, never the content)."""
    log.warning("conversation turn not saved", conv_id=conv_id, reason=error_type, error=error)
    return AppendResult(conv_id, False, error=error, error_type=error_type, **fields)
