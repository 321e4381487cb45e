"""Choosing the history a request sends: provider-ready messages within a token budget.

Pure logic, no I/O: the store reads a snapshot and hands it here.

The budget counts what :func:`kernel.tokens.count_message_tokens` counts for the target model (the
contents plus every message's framing and the reply priming), so ``History.tokens`` is exactly that
function's answer for ``History.messages``. The system prompt is always kept, the messages of the
request being sent (``pending``) too; then whole turns are taken from the newest back while they
fit. A turn is a user message with everything that followed it up to the next user message that
starts a turn (answers, tool calls and tool results stay together), so an older turn never
survives without its answer and no tool result loses the call it answers.

Token counts are stored with each message together with the tokenizer that made them; when the
target model uses the same tokenizer the stored count is reused, otherwise the message is recounted.
Messages are decoded lazily (:class:`Entry`): only those that are sent, or must be recounted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conversation.models import Message
from kernel.providers import provider_of_model
from kernel.tokens import (
    APPROXIMATION,
    REPLY_PRIMING,
    count_message_tokens,
    encoding_name_for,
    get_encoding,
)

COUNTING_MODEL = "gpt-4o"


def tokenizer_id(model: str) -> str:
    """A name for how ``model``'s tokens are counted: equal names give equal counts."""
    encoding = encoding_name_for(model)
    if get_encoding(encoding) is None:
        return "chars"
    factor = APPROXIMATION.get(provider_of_model(model) or "", ("", 1.0))[1]
    return encoding if factor == 1.0 else f"{encoding}*{factor:g}"


def message_cost(message: dict[str, Any], model: str) -> int:
    """Tokens one message adds to a prompt for ``model`` (content, role, name, framing)."""
    return count_message_tokens([message], model) - REPLY_PRIMING


_HEADER = re.compile(
    r'\{"seq":(\d+),"turn":(\d+),"tokens":(\d+),"ts":\d+,"tk":"([^"]*)","role":"(\w+)"'
)


class Entry:
    """One stored message: its header read at once, its JSON decoded only when needed.

    A budgeted read of a long conversation sends the newest turns only; choosing them needs the
    roles, turns and token counts, which the header holds, so the older messages are never decoded.
    """

    __slots__ = ("_message", "index", "raw", "role", "seq", "tokenizer", "tokens", "turn")
    raw: str
    index: int
    seq: int | None
    turn: int | None
    tokens: int | None
    tokenizer: str | None
    role: str

    def __init__(self, raw: str, index: int = 0) -> None:
        self.raw = raw
        self.index = index
        self._message: Message | None = None
        header = _HEADER.match(raw)
        if header is None:  # not written by append_turn: decode now, so errors surface here
            message = self.message
            self.seq, self.turn, self.tokens = message.seq, message.turn, message.tokens
            self.tokenizer, self.role = message.tokenizer, message.role
            return
        self.seq, self.turn, self.tokens = int(header[1]), int(header[2]), int(header[3])
        self.tokenizer, self.role = header[4], header[5]

    @classmethod
    def of(cls, message: Message) -> Entry:
        """An entry for an already decoded message."""
        entry = cls.__new__(cls)
        entry.raw, entry.index, entry._message = "", 0, message
        entry.seq, entry.turn, entry.tokens = message.seq, message.turn, message.tokens
        entry.tokenizer, entry.role = message.tokenizer, message.role
        return entry

    @property
    def message(self) -> Message:
        """The decoded message; ValueError naming the list index if it is not one."""
        if self._message is None:
            try:
                self._message = Message.from_stored(self.raw)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"index {self.index}: not a stored message ({exc})") from exc
        return self._message

    @property
    def starts_unit(self) -> bool:
        return self.role == "user" and (self.seq is None or self.seq == self.turn)

    def cost(self, model: str, tokenizer: str) -> int:
        """The stored count when the same tokenizer made it, else a fresh count for ``model``."""
        if self.tokens is not None and self.tokenizer == tokenizer:
            return self.tokens
        return message_cost(self.message.to_provider(), model)


def group_turns(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Entries in units that are kept or dropped whole (a new unit at each user turn start)."""
    units: list[list[Entry]] = []
    for entry in entries:
        if entry.starts_unit or not units:
            units.append([entry])
        else:
            units[-1].append(entry)
    return units


@dataclass(frozen=True)
class History:
    """What to send for one request.

    ``messages``: the system prompt, the kept turns oldest first, then the pending messages, as
    OpenAI-shaped dicts. ``tokens``: their prompt tokens for the target model. ``last_seq``: pass it
    to ``append_turn(expected_seq=...)`` to learn whether someone else wrote in between.
    ``over_budget``: the system prompt and the pending messages alone exceed ``max_tokens`` (they
    are still returned; the provider or a larger model must decide).
    """

    conv_id: str
    messages: list[dict[str, Any]]
    tokens: int
    last_seq: int = 0
    system_prompt: str | None = None
    kept_messages: int = 0
    dropped_messages: int = 0
    dropped_turns: int = 0
    message_count: int = 0
    bytes: int = 0
    exists: bool = False
    over_budget: bool = False
    budget: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


def select_history(
    stored: Sequence[Entry],
    *,
    model: str,
    max_tokens: int | None,
    system_prompt: str | None,
    pending: Sequence[Message] = (),
) -> tuple[list[dict[str, Any]], int, int, int]:
    """(messages, tokens, dropped messages, dropped turns) for ``model`` within ``max_tokens``."""
    tokenizer = tokenizer_id(model)
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tail = [message.to_provider() for message in pending]
    used = REPLY_PRIMING + sum(message_cost(m, model) for m in (*head, *tail))
    units = group_turns(stored)
    kept: list[list[Entry]] = []
    for unit in reversed(units):
        cost = sum(entry.cost(model, tokenizer) for entry in unit)
        if max_tokens is not None and used + cost > max_tokens:
            break
        used += cost
        kept.append(unit)
    kept.reverse()
    body = [entry for unit in kept for entry in unit]
    orphans = _leading_orphans(body)
    if orphans:  # a tool result whose call was trimmed away is refused by every provider
        used -= sum(entry.cost(model, tokenizer) for entry in body[:orphans])
        body = body[orphans:]
    dropped = len(stored) - len(body)
    out = [*head, *(entry.message.to_provider() for entry in body), *tail]
    return out, used, dropped, len(units) - len(kept)


def _leading_orphans(entries: Sequence[Entry]) -> int:
    count = 0
    while count < len(entries) and entries[count].role == "tool":
        count += 1
    return count
