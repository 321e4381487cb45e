"""Anthropic's extended thinking as the simulator plays it: with ``thinking`` enabled the answer
starts with :data:`THINKING_BLOCK` (streamed as ``thinking_delta`` and ``signature_delta``
events), and, as Anthropic checks, the last assistant turn that used a tool must start with that
block, sent back unchanged (else a 400 naming ``messages.N.content.0.type``).
"""

from __future__ import annotations

from typing import Any

from router.simulator.wire import WireError, sse

#: The thinking block the simulator answers with ``thinking`` enabled (and wants back).
THINKING_BLOCK = {
    "type": "thinking",
    "thinking": "Simulated thinking: the user wants an answer.",
    "signature": "c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
}


def thinking_on(body: dict[str, Any], raw: list[Any]) -> bool:
    """Whether ``thinking`` is enabled; then, as Anthropic checks, the last assistant turn
    that used a tool must start with a thinking block (sent back unchanged)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return False
    for index, message in reversed(list(enumerate(raw))):
        blocks = message.get("content")
        if message["role"] != "assistant" or not isinstance(blocks, list):
            continue
        used = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks)
        if used and blocks[0] != THINKING_BLOCK:
            raise WireError(
                f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                "but found another block (with thinking enabled, a final assistant message "
                "must start with a thinking block)"
            )
        break
    return True


def thinking_events() -> list[bytes]:
    """The thinking block as Anthropic streams it: start, thinking_delta, signature_delta, stop."""
    empty = {"type": "thinking", "thinking": "", "signature": ""}
    events = [{"type": "content_block_start", "index": 0, "content_block": empty}]
    for kind, name in (("thinking_delta", "thinking"), ("signature_delta", "signature")):
        delta = {"type": kind, name: THINKING_BLOCK[name]}
        events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    return [sse(e, str(e["type"])) for e in events]
