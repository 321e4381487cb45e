"""The binding of lua/read_conversation.lua: one consistent snapshot of a conversation."""

from __future__ import annotations

from dataclasses import dataclass

from lua import Script, load
from lua.lib_conversation import ConversationKeys
from lua.runner import Runner

SCRIPT: Script = load("read_conversation")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The metadata, the messages asked for (oldest first, as stored) and the TTL in ms (-2: no
    such conversation)."""

    meta: dict[str, str]
    messages: list[str]
    pttl: int


async def run(runner: Runner, keys: ConversationKeys, newest: int = -1) -> Snapshot:
    """Read a conversation: the ``newest`` messages (-1: all, 0: none)."""
    flat, messages, pttl = await runner.run(SCRIPT, keys.encode(), [newest])
    meta = dict(zip(flat[::2], flat[1::2], strict=True))
    return Snapshot(meta, list(messages), int(pttl))
