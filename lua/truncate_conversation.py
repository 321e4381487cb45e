"""The binding of lua/truncate_conversation.lua: drop the oldest whole turns down to a limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lua import Script, load
from lua.lib_conversation import ConversationKeys
from lua.runner import Runner

SCRIPT: Script = load("truncate_conversation")


@dataclass(frozen=True, slots=True)
class TruncateArgs:
    """Keep at most ``limit`` messages ('count') or stored tokens ('tokens'); the TTL is
    refreshed to ``ttl`` seconds as on every write."""

    mode: Literal["count", "tokens"]
    limit: int
    ttl: int

    def encode(self) -> list[object]:
        return [self.mode, self.limit, self.ttl]


@dataclass(frozen=True, slots=True)
class TruncateReply:
    """Messages removed, and the conversation's messages and tokens left (0s: no such one)."""

    removed: int
    message_count: int
    total_tokens: int


async def run(runner: Runner, keys: ConversationKeys, args: TruncateArgs) -> TruncateReply:
    removed, count, tokens = await runner.run(SCRIPT, keys.encode(), args.encode())
    return TruncateReply(int(removed), int(count), int(tokens))
