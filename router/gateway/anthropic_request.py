"""The body of ``POST /v1/messages`` (Anthropic's Messages API), checked and translated to the
OpenAI-shaped chat request the router takes: a bad field is a 400 that names it
(``messages.1.content.0.source.data``, Anthropic's way of naming a place).

    system "..." or [text blocks]       -> a system message
    user text / image blocks            -> a user message (images as ``image_url`` parts:
                                           base64 as a ``data:`` URL, or the URL)
    user tool_result blocks             -> ``tool`` messages (before the turn's other content)
    assistant text / tool_use blocks    -> an assistant message with ``tool_calls``
    assistant thinking blocks           -> kept as sent for Anthropic keys, dropped for others
    tools / tool_choice                 -> OpenAI's function tools / tool_choice
    stop_sequences, top_p               -> ``stop``, ``top_p`` (every provider)
    top_k, thinking, metadata           -> passed on to Anthropic keys (``top_k`` to Gemini too)

The router's adapters turn that shape into each provider's wire format (Anthropic's natively).
"""

from __future__ import annotations

import json
import re
from typing import Any

from kernel.errors import GatewayError
from router.gateway.chat_request import (
    FUNCTION_NAME,
    ChatParams,
    _is_int,
    _number,
    _object,
    _plain,
    _string,
)
from router.gateway.errors import bad_request
from router.providers.anthropic_thinking import THINKING_KEY, THINKING_TYPES
from router.providers.catalog import completion_tokens_problem

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_VERSION = "2023-06-01"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _fail(message: str, param: str) -> GatewayError:
    return bad_request(f"{param}: {message}", param=param)


def anthropic_version(value: str | None) -> str:
    """The ``anthropic-version`` header's value (a date like 2023-06-01); missing: the default."""
    if value is None:
        return DEFAULT_VERSION
    if not VERSION.match(value.strip()):
        raise _fail("expected a date like 2023-06-01", "anthropic-version")
    return value.strip()


def _text(block: dict[str, Any], where: str) -> str:
    return _string(block.get("text"), where + ".text")


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = _object(block.get("source"), where + ".source")
    kind = source.get("type")
    if kind == "base64":
        media = source.get("media_type")
        if media not in IMAGE_TYPES:
            raise _fail(f"expected one of {', '.join(IMAGE_TYPES)}", where + ".source.media_type")
        data = _string(source.get("data"), where + ".source.data", empty=False)
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        url = _string(source.get("url"), where + ".source.url", empty=False)
    else:
        raise _fail("expected 'base64' or 'url'", where + ".source.type")
    return {"type": "image_url", "image_url": {"url": url}}


def _result_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _fail("expected a string or an array of text blocks", where)
    texts = []
    for i, block in enumerate(content):
        block = _object(block, f"{where}.{i}")
        if block.get("type") != "text":
            raise _fail("a tool result takes text blocks only here", f"{where}.{i}.type")
        texts.append(_text(block, f"{where}.{i}"))
    return "\n".join(texts)


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = _string(block.get("tool_use_id"), where + ".tool_use_id", empty=False)
    text = _result_text(block.get("content"), where + ".content")
    if block.get("is_error") is True:
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _user(content: list[Any], where: str) -> list[dict[str, Any]]:
    """A user turn's blocks: its tool results as ``tool`` messages, then the rest as one user
    message (OpenAI wants a tool call's result right after the call)."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.{i}"
        block = _object(block, at)
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "tool_result":
            results.append(_tool_result(block, at))
        else:
            raise _fail("a user turn takes text, image and tool_result blocks", at + ".type")
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    name = _string(block.get("name"), where + ".name", empty=False)
    arguments = _object(block.get("input"), where + ".input")
    return {
        "id": _string(block.get("id"), where + ".id", empty=False),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def _thinking(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A thinking block, kept as sent (Anthropic checks its signature) once its fields are there."""
    fields = ("thinking", "signature") if block["type"] == "thinking" else ("data",)
    for name in fields:
        if not isinstance(block.get(name), str):
            raise _fail("expected a string", f"{where}.{name}")
    return dict(block)


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.{i}"
        block = _object(block, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind in THINKING_TYPES:
            thinking.append(_thinking(block, at))
        else:
            raise _fail("an assistant turn takes text, tool_use and thinking blocks", at + ".type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if thinking:
        message[THINKING_KEY] = thinking
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _message(value: Any, i: int) -> list[dict[str, Any]]:
    where = f"messages.{i}"
    message = _object(value, where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _fail("expected 'user' or 'assistant'", where + ".role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list) or not content:
        raise _fail("expected a string or a non-empty array of content blocks", where + ".content")
    if role == "user":
        return _user(content, where + ".content")
    return [_assistant(content, where + ".content")]


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}] if value else []
    if not isinstance(value, list):
        raise _fail("expected a string or an array of text blocks", "system")
    texts = []
    for i, block in enumerate(value):
        block = _object(block, f"system.{i}")
        if block.get("type") != "text":
            raise _fail("expected a text block", f"system.{i}.type")
        texts.append(_text(block, f"system.{i}"))
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``system`` and ``messages`` as OpenAI-shaped chat messages."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _fail("expected a non-empty array of messages", "messages")
    messages = _system(body.get("system"))
    for i, message in enumerate(raw):
        messages.extend(_message(message, i))
    return messages


def _tool(value: Any, i: int) -> dict[str, Any]:
    where = f"tools.{i}"
    tool = _object(value, where)
    if tool.get("type") not in (None, "custom"):
        raise _fail("only client tools (name, description, input_schema) are served", where)
    name = tool.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        raise _fail("expected 1-64 letters, digits, '_' or '-'", where + ".name")
    function: dict[str, Any] = {
        "name": name,
        "parameters": _object(tool.get("input_schema"), where + ".input_schema"),
    }
    if tool.get("description") is not None:
        function["description"] = _string(tool["description"], where + ".description")
    return {"type": "function", "function": function}


def _tool_choice(value: Any, extras: dict[str, Any]) -> None:
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        name = _string(choice.get("name"), "tool_choice.name", empty=False)
        extras["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in CHOICES:
        extras["tool_choice"] = CHOICES[kind]
    else:
        raise _fail("expected 'auto', 'any', 'tool' or 'none'", "tool_choice.type")
    if choice.get("disable_parallel_tool_use") is True:
        extras["parallel_tool_calls"] = False


def _stop_sequences(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail("expected an array of strings", "stop_sequences")
    return [_string(s, f"stop_sequences.{i}", empty=False) for i, s in enumerate(value)]


def _anthropic_only(body: dict[str, Any], extras: dict[str, Any]) -> None:
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise _fail("expected a non-negative integer", "top_k")
        extras["top_k"] = top_k
    if body.get("thinking") is not None:
        thinking = _object(body["thinking"], "thinking")
        if thinking.get("type") not in ("enabled", "disabled"):
            raise _fail("expected 'enabled' or 'disabled'", "thinking.type")
        extras["thinking"] = thinking
    if body.get("metadata") is not None:
        metadata = _object(body["metadata"], "metadata")
        if metadata.get("user_id") is not None:
            _string(metadata["user_id"], "metadata.user_id", limit=256)
        extras["anthropic_metadata"] = metadata


def _extras(body: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if body.get("tools") is not None:
        if not isinstance(body["tools"], list):
            raise _fail("expected an array of tools", "tools")
        extras["tools"] = [_tool(t, i) for i, t in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], extras)
    if body.get("stop_sequences"):
        extras["stop"] = _stop_sequences(body["stop_sequences"])
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        extras["top_p"] = top_p
    _anthropic_only(body, extras)
    return extras


def _model(body: dict[str, Any]) -> str:
    return _plain(_string(body.get("model"), "model", empty=False, limit=256), "model")


def parse_messages_request(body: Any) -> ChatParams:
    """A ``POST /v1/messages`` body as the router's chat request, or a 400 naming the field."""
    body = _object(body, "body")
    model = _model(body)
    if body.get("max_tokens") is None:
        raise _fail("Field required", "max_tokens")
    problem = completion_tokens_problem(body["max_tokens"], model)
    if problem is not None:
        raise _fail(problem, "max_tokens")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("expected a boolean", "stream")
    return ChatParams(
        model=model,
        messages=chat_messages(body),
        stream=bool(stream),
        max_tokens=int(body["max_tokens"]),
        temperature=_number(body, "temperature", 0, 1),
        extras=_extras(body),
    )


def parse_count_request(body: Any) -> ChatParams:
    """A ``POST /v1/messages/count_tokens`` body (no ``max_tokens``): model, system, messages,
    tools (counted too)."""
    body = _object(body, "body")
    model = _model(body)
    return ChatParams(model=model, messages=chat_messages(body), extras=_extras(body))
