"""What a conversation holds: messages, and how one is checked, stored and handed to a provider.

A stored message is one JSON object in the conversation's Redis list. The client writes the body
(``role`` first, then content and the provider fields, then where the answer came from); the
``append_turn`` script puts a header in front of it::

    {"seq":7,"turn":7,"tokens":12,"ts":1718000000123,"tk":"o200k_base","role":"user","content":"..."}

``seq`` numbers the messages of a conversation (1, 2, 3 ... never reused, even after trimming),
``turn`` is the ``seq`` of the first message of the turn it arrived with, ``ts`` is Redis time in
milliseconds, ``tokens`` the message's prompt tokens as counted by tokenizer ``tk``. Keeping the
header first, with integers only, lets the scripts read it with one Lua pattern (no JSON decoding,
no Lua float formatting) and lets a budgeted read skip decoding messages it will not send.

The key that produced an answer is stored only in its masked form (``sk-proj-abc...xyz1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kernel.errors import ClientRequestError
from kernel.masking import mask_secret

Role = Literal["user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("user", "assistant", "tool")

#: Conversation ids go inside a Redis Cluster hash tag ``{<conv_id>}``: a brace would move the tag.
_CONV_ID = re.compile(r"^[^\s{}\x00-\x1f]{1,256}$")
_TURN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: Fields a caller may give a message (OpenAI's chat message shape plus the answer's origin).
_INPUT_FIELDS = frozenset(
    {"role", "content", "name", "tool_call_id", "tool_calls", "model", "provider", "key", "key_id"}
)


def check_conv_id(conv_id: object, param: str = "conv_id") -> str:
    """``conv_id`` if usable as a key's hash tag; else ClientRequestError naming ``param``."""
    if not isinstance(conv_id, str) or not _CONV_ID.match(conv_id):
        raise ClientRequestError(
            f"{param} must be 1-256 characters without whitespace, control characters or braces; "
            f"got {conv_id!r}",
            param=param,
        )
    return conv_id


def check_turn_id(turn_id: str, param: str = "turn_id") -> str:
    if not _TURN_ID.match(turn_id):
        raise ClientRequestError(
            f"{param} must match [A-Za-z0-9_.-]{{1,64}}; got {turn_id!r}", param
        )
    return turn_id


def masked_key(value: str | None) -> str | None:
    """The display form of the key that produced an answer; a raw secret is masked here."""
    if not value:
        return None
    if "..." in value or value == "****":
        return value
    return mask_secret(value)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, with where it came from once stored.

    ``content`` is a string, a list of content parts (multimodal), or None for an assistant
    message that only calls tools. ``model``/``provider``/``key`` (masked)/``key_id`` describe the
    call that produced an assistant answer. ``seq``, ``turn``, ``tokens`` and ``timestamp`` are set
    by the store; ``tokenizer`` records which tokenizer counted ``tokens``.
    """

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    model: str | None = None
    provider: str | None = None
    key: str | None = None
    key_id: str | None = None
    tokens: int | None = None
    tokenizer: str | None = None
    seq: int | None = None
    turn: int | None = None
    timestamp: float | None = None

    @classmethod
    def user(cls, content: str | list[dict[str, Any]], *, name: str | None = None) -> Message:
        return cls(role="user", content=content, name=name)

    @classmethod
    def assistant(
        cls,
        content: str | None,
        *,
        model: str | None = None,
        provider: str | None = None,
        key: str | None = None,
        key_id: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> Message:
        """An answer; ``key`` is masked if it is not already (a secret is never stored)."""
        return cls(
            role="assistant",
            content=content,
            model=model,
            provider=provider,
            key=masked_key(key),
            key_id=key_id,
            tool_calls=tool_calls,
        )

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)

    @classmethod
    def from_input(cls, value: Message | Mapping[str, Any], where: str = "message") -> Message:
        """A checked message from a Message or an OpenAI-shaped dict; errors name ``where``."""
        if isinstance(value, Message):
            message = value
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - _INPUT_FIELDS)
            if unknown:
                raise ClientRequestError(f"{where}: unknown field(s) {unknown}", param=where)
            if "role" not in value:
                raise ClientRequestError(f"{where}.role is required", f"{where}.role")
            message = cls(**{k: v for k, v in value.items() if v is not None})
        else:
            raise ClientRequestError(
                f"{where}: expected a message dict, got {type(value).__name__}", where
            )
        return message.checked(where)

    def checked(self, where: str = "message") -> Message:
        """This message if well formed (key masked), else ClientRequestError naming the field."""
        role: str = self.role
        if role not in ROLES:
            hint = " (the system prompt is set with system_prompt=)" if role == "system" else ""
            raise ClientRequestError(
                f"{where}.role must be one of {list(ROLES)}, got {self.role!r}{hint}",
                f"{where}.role",
            )
        _check_content(self, where)
        for name in ("name", "tool_call_id", "model", "provider", "key", "key_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ClientRequestError(f"{where}.{name} must be a string", f"{where}.{name}")
        if self.role == "tool" and not self.tool_call_id:
            raise ClientRequestError(
                f"{where}.tool_call_id is required for a tool message", f"{where}.tool_call_id"
            )
        if self.tool_calls is not None and (
            self.role != "assistant"
            or not isinstance(self.tool_calls, list)
            or not all(isinstance(call, Mapping) for call in self.tool_calls)
        ):
            raise ClientRequestError(
                f"{where}.tool_calls must be a list of objects on an assistant message",
                f"{where}.tool_calls",
            )
        key = masked_key(self.key)
        if key == self.key:
            return self
        return Message(**{**self.as_dict(), "key": key})

    def as_dict(self) -> dict[str, Any]:
        """Every field, None included (for ``Message(**...)`` copies)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def to_provider(self) -> dict[str, Any]:
        """The OpenAI-shaped message for a provider adapter: role, content, name, tool fields."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out

    def body(self) -> str:
        """The JSON the script stores after its own fields: role first, no empty fields."""
        fields: dict[str, Any] = self.to_provider()
        for name in ("model", "provider", "key", "key_id"):
            value = getattr(self, name)
            if value:
                fields[name] = value
        if self.role == "assistant" and self.content is None:
            fields["content"] = None  # kept: OpenAI wants content present, null with tool calls
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_stored(cls, raw: str) -> Message:
        """A message as the store holds it; ValueError if ``raw`` is not one."""
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("role") not in ROLES:
            raise ValueError("not a stored conversation message")
        ts = data.pop("ts", None)
        data["tokenizer"] = data.pop("tk", None)
        known = {k: v for k, v in data.items() if k in cls.__slots__}
        known["timestamp"] = ts / 1000.0 if isinstance(ts, int | float) else None
        return cls(**known)


def _check_content(message: Message, where: str) -> None:
    content = message.content
    if content is None:
        if message.role == "assistant" and message.tool_calls:
            return
        raise ClientRequestError(f"{where}.content is required", f"{where}.content")
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(part, Mapping) for part in content):
        return
    raise ClientRequestError(
        f"{where}.content must be a string or a list of content parts, "
        f"got {type(content).__name__}",
        f"{where}.content",
    )


def messages_from_input(
    messages: Sequence[Message | Mapping[str, Any]], param: str = "messages"
) -> list[Message]:
    """Checked messages; a lone Message or dict is taken as a list of one."""
    given: object = messages
    if isinstance(given, Message | Mapping):
        given = [given]
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ClientRequestError(f"{param} must be a list of messages", param)
    return [Message.from_input(m, f"{param}[{i}]") for i, m in enumerate(given)]
