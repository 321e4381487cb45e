"""What the conversation scripts (append_turn, read_conversation, truncate_conversation) share:
their KEYS, one conversation's two keys in one Cluster slot (lua/lib_conversation.lua is their
shared Lua)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConversationKeys:
    """KEYS of every conversation script: the message list, then the metadata hash."""

    messages: str
    meta: str

    def encode(self) -> list[str]:
        return [self.messages, self.meta]
