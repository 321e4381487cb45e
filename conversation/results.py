"""What a write to a conversation answers.

An append never raises for a store that is down, a full conversation or a concurrent change: the
answer has been produced and paid for by then, so the caller must get it together with the news
that it was not kept. :class:`AppendResult` carries both; ``response_fields()`` is what
``send_chat`` adds to its answer (``conversation_saved: False`` and the reason) and
``raise_for_error()`` turns it into the matching :mod:`kernel.errors` exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from kernel.errors import ConversationNotSavedError, ConversationTooLargeError

#: Why a turn was not saved.
NotSavedReason = Literal[
    "store_unavailable", "conversation_too_large", "conversation_conflict", "conversation_not_saved"
]


class ConversationFields(TypedDict, total=False):
    """What a ``send_chat`` answer carries about its conversation (router/answers.py's Answer):
    ``conversation_saved`` always; ``conversation_seq`` (and ``conversation_trimmed``) when the
    turn was stored, ``conversation_error`` and ``conversation_error_type`` when it was not."""

    conversation_saved: bool
    conversation_seq: int
    conversation_trimmed: int
    conversation_error: str | None
    conversation_error_type: NotSavedReason | None


@dataclass(frozen=True)
class AppendResult:
    """The outcome of one turn append.

    ``saved`` is True when the turn is in the store (``duplicate`` True when it already was: a
    retried request with the same ``turn_id``). ``first_seq``/``last_seq`` are the sequence
    numbers of its messages (on a conflict, both are the conversation's current last sequence).
    ``trimmed`` counts the oldest messages removed to make room. ``error``/``error_type`` say why
    a turn was not saved. ``turn_id`` identifies the turn: appending it again with the same id
    stores it at most once (after a timeout the first attempt may have been stored after all).
    """

    conv_id: str
    saved: bool
    first_seq: int = 0
    last_seq: int = 0
    message_count: int = 0
    total_tokens: int = 0
    bytes: int = 0
    trimmed: int = 0
    duplicate: bool = False
    error: str | None = None
    error_type: NotSavedReason | None = None
    turn_id: str | None = None

    def response_fields(self) -> ConversationFields:
        """The fields a ``send_chat`` answer carries about its conversation."""
        out: ConversationFields = {"conversation_saved": self.saved}
        if self.saved:
            out["conversation_seq"] = self.last_seq
            if self.trimmed:
                out["conversation_trimmed"] = self.trimmed
        else:
            out["conversation_error"] = self.error
            out["conversation_error_type"] = self.error_type
        return out

    def raise_for_error(self) -> AppendResult:
        """Self when saved; else ConversationTooLargeError or ConversationNotSavedError."""
        if self.saved:
            return self
        message = self.error or f"turn of conversation {self.conv_id!r} was not saved"
        if self.error_type == "conversation_too_large":
            raise ConversationTooLargeError(message)
        raise ConversationNotSavedError(message)


@dataclass(frozen=True)
class TruncateResult:
    """What a truncation removed and what is left."""

    conv_id: str
    removed: int
    message_count: int
    total_tokens: int
