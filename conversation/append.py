"""One turn append: the ``append_turn`` arguments of a turn and what its reply means.

Pure logic, no I/O: :class:`~conversation.store.ConversationStore` runs the script through its
binding (lua/append_turn.py). The script answers a status (``ok``, ``duplicate``, ``conflict``, ``too_large``) with the conversation's
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
from lua.append_turn import AppendArgs, AppendReply

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

    def script_args(self, limits: ConversationLimits) -> AppendArgs:
        """The ``append_turn`` arguments: limits, options, tokenizer, the messages' counts."""
        counting_model = self.model or COUNTING_MODEL
        return AppendArgs(
            ttl=limits.ttl_seconds,
            max_messages=limits.max_messages,
            max_bytes=limits.max_bytes,
            overflow=limits.overflow,
            expected_seq=self.expected_seq,
            turn_id=self.turn_id,
            conv_id=self.conv_id,
            system_prompt=self.system_prompt,
            model=self.model or "",
            provider=self.provider or "",
            tokenizer=tokenizer_id(counting_model),
            messages=[
                (message_cost(m.to_provider(), counting_model), m.body()) for m in self.messages
            ],
        )


def read_reply(write: TurnWrite, reply: AppendReply, limits: ConversationLimits) -> AppendResult:
    """The AppendResult of the script's reply."""
    fields: dict[str, Any] = {
        "message_count": reply.message_count,
        "total_tokens": reply.total_tokens,
        "bytes": reply.bytes,
        "turn_id": write.retry_id,
    }
    if reply.status in ("ok", "duplicate"):
        return AppendResult(
            write.conv_id,
            True,
            reply.first_seq,
            reply.last_seq,
            trimmed=reply.trimmed,
            duplicate=reply.status == "duplicate",
            **fields,
        )
    if reply.status == "conflict":
        reason = (
            f"conversation {write.conv_id!r} changed since it was read (expected last sequence "
            f"{write.expected_seq}, now {reply.last_seq}); the turn was not saved"
        )
        fields.update(first_seq=reply.last_seq, last_seq=reply.last_seq)
        return not_saved(write.conv_id, "conversation_conflict", reason, **fields)
    reason = too_large_reason(write.conv_id, reply.cap, reply.needed, limits)
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
