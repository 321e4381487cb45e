"""Anthropic's thinking blocks (``thinking`` with ``signature``, ``redacted_thinking`` with
``data``): read from an answer or a stream, and carried back unchanged on the next request.

The Messages API's assistant turns carry them on the OpenAI-shaped message under
:data:`THINKING_KEY`, a private key only the Anthropic adapter sends (before the turn's text and
``tool_use`` blocks, as Anthropic wants them); the OpenAI adapter drops it (:func:`public`),
Gemini's conversion never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

THINKING_KEY = "_anthropic_thinking"
THINKING_TYPES = ("thinking", "redacted_thinking")


def thinking_blocks(blocks: list[Any]) -> list[dict[str, Any]]:
    """The thinking and redacted-thinking blocks of an answer's content, in order."""
    return [dict(b) for b in blocks if isinstance(b, dict) and b.get("type") in THINKING_TYPES]


def public(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages without the private thinking key (for providers other than Anthropic)."""
    return [
        {k: v for k, v in m.items() if k != THINKING_KEY} if THINKING_KEY in m else m
        for m in messages
    ]


@dataclass
class StreamThinking:
    """A stream's thinking blocks as their events arrive: by index, the thinking text from
    ``thinking_delta`` events, the signature from ``signature_delta``."""

    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)

    def start(self, index: int, block: dict[str, Any]) -> None:
        if block.get("type") == "thinking":
            self.blocks[index] = {"type": "thinking", "thinking": "", "signature": ""}
        elif block.get("type") == "redacted_thinking":
            self.blocks[index] = {"type": "redacted_thinking", "data": str(block.get("data", ""))}

    def delta(self, index: int, delta: dict[str, Any]) -> None:
        slot = self.blocks.get(index)
        if slot is None:
            return
        if delta.get("type") == "thinking_delta":
            slot["thinking"] += str(delta.get("thinking") or "")
        elif delta.get("type") == "signature_delta":
            slot["signature"] += str(delta.get("signature") or "")

    def end(self) -> list[dict[str, Any]]:
        return [b for _, b in sorted(self.blocks.items())]
