"""Deterministic content and token counts for the simulator.

Prompt tokens are counted as :func:`kernel.tokens.count_message_tokens` frames a chat (per-message
framing, reply priming) with the model's base encoding, memoised per text for speed. For OpenAI
models the result equals ``count_message_tokens`` exactly; for Claude and Gemini models the router
multiplies its counts by a safety factor and the simulator does not, so the router's estimate is
never below the simulator's count and a correctly reserving router never sees a token 429.

A reply names the provider, counts the messages received, echoes the start of the last
user message, and is padded or cut to exactly the configured number of completion tokens.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kernel.tokens import (
    CHARS_PER_TOKEN,
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    Encoder,
    content_text,
    encoding_name_for,
    get_encoding,
)

_PAD = " ok"
_SNIPPET = 40
_UNSAFE = re.compile(r"[^ -~]|[\"\\]")


@lru_cache(maxsize=8192)
def _count(text: str, encoding: str) -> int:
    if not text:
        return 0
    encoder = get_encoding(encoding)
    if encoder is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoder.encode(text, disallowed_special=()))


def count_prompt_tokens(model: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens as the simulated provider counts them (see the module docstring)."""
    encoding = encoding_name_for(model)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + _count(content_text(message.get("content")), encoding)
        role = message.get("role")
        total += _count(str(role), encoding) if role else 0
        if message.get("name"):
            total += TOKENS_PER_NAME + _count(str(message["name"]), encoding)
        if message.get("tool_calls"):
            total += _count(str(message["tool_calls"]), encoding)
    return total


def count_text_tokens(model: str, text: str) -> int:
    return _count(text, encoding_name_for(model))


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Reply:
    """A generated answer: the text in stream pieces, its token count and why it stopped."""

    pieces: tuple[str, ...]
    completion_tokens: int
    finish_reason: str  # stop | length | tool_calls
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _snippet(text: str) -> str:
    return _UNSAFE.sub("", text)[:_SNIPPET].strip()


def make_reply(
    provider: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    completion_tokens: int,
    max_tokens: int | None,
    chunk_tokens: int,
) -> Reply:
    """The deterministic answer: exactly ``min(completion_tokens, max_tokens)`` tokens."""
    wanted = completion_tokens if max_tokens is None else min(completion_tokens, max_tokens)
    finish = "length" if max_tokens is not None and max_tokens < completion_tokens else "stop"
    last_user = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    pieces, count = _text_pieces(
        provider, model, len(messages), _snippet(last_user), wanted, chunk_tokens
    )
    return Reply(pieces, count, finish)


@lru_cache(maxsize=4096)
def _text_pieces(
    provider: str, model: str, n_messages: int, snippet: str, wanted: int, chunk_tokens: int
) -> tuple[tuple[str, ...], int]:
    header = f"Simulated {provider} reply to {n_messages} message(s)."
    if snippet:
        header += f' You said: "{snippet}".'
    encoder = get_encoding(encoding_name_for(model))
    if encoder is None:
        text = (header + _PAD * wanted)[: max(0, round(wanted * CHARS_PER_TOKEN))]
        size = max(1, round(chunk_tokens * CHARS_PER_TOKEN))
        return tuple(text[i : i + size] for i in range(0, len(text), size)), wanted
    tokens = _fit(encoder, header, wanted)
    decode = getattr(encoder, "decode")  # noqa: B009 - Encoder protocol only declares encode
    pieces = tuple(
        decode(tokens[i : i + chunk_tokens]) for i in range(0, len(tokens), chunk_tokens)
    )
    return pieces, len(tokens)


def _fit(encoder: Encoder, header: str, wanted: int) -> list[int]:
    tokens = encoder.encode(header, disallowed_special=())
    if len(tokens) >= wanted:
        return tokens[:wanted]
    pad = encoder.encode(_PAD, disallowed_special=())
    while len(tokens) < wanted:
        tokens.extend(pad[: wanted - len(tokens)])
    return tokens


def tool_reply(model: str, name: str, call_id: str, max_tokens: int | None) -> Reply:
    """A call of tool ``name`` with empty arguments (what a forced tool choice produces)."""
    arguments = json.dumps({})
    tokens = count_text_tokens(model, name + arguments)
    if max_tokens is not None:
        tokens = min(tokens, max_tokens)
    return Reply((), tokens, "tool_calls", ToolCall(call_id, name, arguments))
