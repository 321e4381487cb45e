"""The binding of lua/append_turn.lua: store one turn of a conversation together or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lua import Script, load
from lua.lib_conversation import ConversationKeys
from lua.runner import Runner

SCRIPT: Script = load("append_turn")


@dataclass(frozen=True, slots=True)
class AppendArgs:
    """ARGV: the caps (TTL, messages, bytes, 'trim' | 'error'), the expected last sequence (None:
    no check), the turn id ('' for none: no idempotency record), the conversation id, the system
    prompt (None keeps it, '' removes it), the turn's model and provider ('' leaves them), the
    tokenizer that counted, then the messages as (token count, JSON body) pairs."""

    ttl: int
    max_messages: int
    max_bytes: int
    overflow: str
    expected_seq: int | None
    turn_id: str
    conv_id: str
    system_prompt: str | None
    model: str
    provider: str
    tokenizer: str
    messages: Sequence[tuple[int, str]]

    def encode(self) -> list[object]:
        out: list[object] = [
            self.ttl,
            self.max_messages,
            self.max_bytes,
            self.overflow,
            -1 if self.expected_seq is None else self.expected_seq,
            self.turn_id,
            self.conv_id,
            "0" if self.system_prompt is None else "1",
            self.system_prompt or "",
            self.model,
            self.provider,
            len(self.messages),
            self.tokenizer,
        ]
        for tokens, body in self.messages:
            out += [tokens, body]
        return out


@dataclass(frozen=True, slots=True)
class AppendReply:
    """The status ('ok', 'duplicate': answered from the turn id, 'conflict', 'too_large'), the
    turn's sequences (or the last one), the conversation's counters, messages trimmed, and for
    too_large the cap ('messages' | 'bytes') and the size it would have needed."""

    status: Literal["ok", "duplicate", "conflict", "too_large"]
    first_seq: int
    last_seq: int
    message_count: int
    total_tokens: int
    bytes: int
    trimmed: int
    cap: str
    needed: int


def decode(reply: Sequence[Any]) -> AppendReply:
    status, first, last, count, tokens, size, trimmed, cap, needed = reply
    ints = (int(first), int(last), int(count), int(tokens), int(size), int(trimmed))
    return AppendReply(status, *ints, str(cap), int(needed))


async def run(
    runner: Runner,
    keys: ConversationKeys,
    args: AppendArgs,
    *,
    replay_args: AppendArgs | None = None,
    replayed: Callable[[AppendReply], None] | None = None,
) -> AppendReply:
    """Append; in degraded mode a write kept locally is run again on the shared store with
    ``replay_args`` when it returns, and ``replayed`` is told that reply."""
    told = None if replayed is None else (lambda raw: replayed(decode(raw)))
    replay = None if replay_args is None else replay_args.encode()
    raw = await runner.run(SCRIPT, keys.encode(), args.encode(), replay_args=replay, replayed=told)
    return decode(raw)
