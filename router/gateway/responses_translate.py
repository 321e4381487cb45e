"""The Responses API's request in chat's terms, and a router answer as a ``response`` object.

``POST /v1/responses`` is served statelessly: the whole conversation comes in ``input`` (a string,
or items: messages, ``function_call`` and ``function_call_output``), ``instructions`` becomes the
first system message, function tools and ``tool_choice`` become chat's, ``text.format`` becomes
``response_format`` and ``max_output_tokens`` ``max_tokens``. The result is checked once more as a
chat request (chat_request.py), so what reaches the router is what chat completions accept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import GatewayError
from router.answers import Answer
from router.gateway.chat_request import ChatParams, parse_chat_request
from router.gateway.errors import bad_request
from router.providers.catalog import completion_tokens_problem

ROLES = ("user", "system", "developer", "assistant")
STATELESS = (
    "The gateway is stateless: it stores no responses, so '{name}' cannot be used. Send the "
    "whole conversation in 'input' (earlier output items included) instead."
)
#: Request fields echoed in the response object as they came.
ECHOED = ("instructions", "metadata", "temperature", "top_p", "max_output_tokens", "user")


@dataclass
class ResponsesParams(ChatParams):
    """A checked Responses request: the chat parameters, and what the response object echoes."""

    echo: dict[str, Any] = field(default_factory=dict)


def _fail(message: str, param: str) -> GatewayError:
    return bad_request(f"Invalid value for '{param}': {message}", param=param)


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail("expected an object", param)
    return value


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _fail("expected a string", param)
    return value


# -- input items -> chat messages --------------------------------------------------------------
def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _fail("the gateway takes images as 'image_url' (a URL or data URL)", where)
    image: dict[str, Any] = {"url": url}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    part = _object(part, where)
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _text(part.get("text"), where + ".text")}
    if kind == "refusal" and role == "assistant":
        return {"type": "text", "text": _text(part.get("refusal"), where + ".refusal")}
    if kind == "input_image" and role == "user":
        return _image(part, where + ".image_url")
    if kind == "input_file" and role == "user":
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
        return {"type": "file", "file": file}
    allowed = "output_text, refusal" if role == "assistant" else "input_text"
    if role == "user":
        allowed = "input_text, input_image, input_file"
    raise _fail(f"a {role} message takes content parts of type {allowed}", where + ".type")


def _content(value: Any, role: str, where: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _fail("expected a string or an array of content parts", where)
    parts = [_part(p, role, f"{where}[{i}]") for i, p in enumerate(value)]
    if role != "user":  # plain text for every provider: the parts are all text here
        return "".join(p["text"] for p in parts)
    return parts


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise _fail(f"expected one of {', '.join(ROLES)}", where + ".role")
    return {"role": role, "content": _content(item.get("content"), role, where + ".content")}


def _function_call(item: dict[str, Any], where: str, messages: list[dict[str, Any]]) -> None:
    call = {
        "id": _text(item.get("call_id"), where + ".call_id"),
        "type": "function",
        "function": {
            "name": _text(item.get("name"), where + ".name"),
            "arguments": _text(item.get("arguments"), where + ".arguments"),
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":  # parallel calls: one assistant turn
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(
            _text(_object(p, f"{where}.output[{i}]").get("text"), f"{where}.output[{i}].text")
            for i, p in enumerate(output)
        )
    return {
        "role": "tool",
        "tool_call_id": _text(item.get("call_id"), where + ".call_id"),
        "content": _text(output, where + ".output"),
    }


def _item(value: Any, i: int, messages: list[dict[str, Any]]) -> None:
    where = f"input[{i}]"
    item = _object(value, where)
    kind = item.get("type", "message")
    if kind == "message":
        messages.append(_message(item, where))
    elif kind == "function_call":
        _function_call(item, where, messages)
    elif kind == "function_call_output":
        messages.append(_function_output(item, where))
    elif kind == "reasoning":
        return  # a model's reasoning summary sent back: nothing a chat call takes
    elif kind == "item_reference":
        raise bad_request(STATELESS.format(name=where), param=where)
    else:
        raise _fail(
            f"the item type '{kind}' is not supported; the gateway takes message, "
            "function_call and function_call_output items",
            where + ".type",
        )


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        messages.append({"role": "system", "content": _text(instructions, "instructions")})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list) and given:
        for i, item in enumerate(given):
            _item(item, i, messages)
    else:
        raise _fail("expected a string or a non-empty array of input items", "input")
    return messages


# -- tools, output format, options -------------------------------------------------------------
def _tool(value: Any, i: int) -> dict[str, Any]:
    where = f"tools[{i}]"
    tool = _object(value, where)
    kind = tool.get("type")
    if kind != "function":
        raise _fail(
            f"the tool type '{kind}' is not supported by the gateway: only function tools are",
            where + ".type",
        )
    function = {"name": tool.get("name")}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _tool_choice(value: Any) -> Any:
    if value in ("none", "auto", "required"):
        return value
    choice = _object(value, "tool_choice")
    if choice.get("type") != "function":
        raise _fail(
            "expected 'none', 'auto', 'required' or {'type': 'function', 'name': ...}",
            "tool_choice.type",
        )
    return {"type": "function", "function": {"name": _text(choice.get("name"), "tool_choice.name")}}


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = _object(text, "text").get("format")
    if fmt is None:
        return None
    fmt = _object(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise _fail("expected 'text', 'json_object' or 'json_schema'", "text.format.type")
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


def _refuse_state(body: dict[str, Any]) -> None:
    for name in ("previous_response_id", "conversation", "prompt"):
        if body.get(name) is not None:
            raise bad_request(STATELESS.format(name=name), param=name)
    if body.get("background"):
        raise bad_request(STATELESS.format(name="background"), param="background")
    if body.get("store") is not None and not isinstance(body["store"], bool):
        raise _fail("expected a boolean", "store")
    if body.get("metadata") is not None:
        _object(body["metadata"], "metadata")


def _max_output(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    problem = completion_tokens_problem(value, str(body.get("model")))
    if problem is not None:
        raise _fail(problem, "max_output_tokens")
    return int(value)


def _chat_body(body: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _messages(body)}
    if body.get("tools"):
        if not isinstance(body["tools"], list):
            raise _fail("expected an array of tools", "tools")
        chat["tools"] = [_tool(t, i) for i, t in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        chat["response_format"] = _response_format(body["text"])
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    chat["max_tokens"] = _max_output(body)
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "stream"):
        chat[name] = body.get(name)
    return {k: v for k, v in chat.items() if v is not None}


def parse_responses_request(body: Any) -> ResponsesParams:
    """The checked request as chat parameters, or a GatewayError (400) naming the field."""
    body = _object(body, "body")
    _refuse_state(body)
    chat = parse_chat_request(_chat_body(body))
    echo = {name: body.get(name) for name in ECHOED}
    echo["tools"] = list(body.get("tools") or [])
    echo["tool_choice"] = body.get("tool_choice") or "auto"
    echo["text"] = body.get("text") or {"format": {"type": "text"}}
    echo["parallel_tool_calls"] = body.get("parallel_tool_calls", True)
    echo["store"] = bool(body.get("store", False))
    return ResponsesParams(**vars(chat), echo=echo)


# -- the answer as a response object -----------------------------------------------------------
def response_usage(answer: Answer) -> dict[str, Any]:
    tokens = answer["tokens"]
    prompt, completion = tokens["prompt"], tokens["completion"]
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": tokens["cached"], "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens["total"] or prompt + completion,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [output_text(text)] if status == "completed" else []
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call: Any, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call["id"],
        "name": call["name"],
        "arguments": call["arguments"] if status == "completed" else "",
        "status": status,
    }


def output_items(answer: Answer, rid: str) -> list[dict[str, Any]]:
    items = [message_item(f"msg_{rid}", answer["content"])] if answer["content"] else []
    if items and status_of(answer)[0] == "incomplete":  # cut short: the message is too
        items[0]["status"] = "incomplete"
    items += [call_item(f"fc_{rid}_{i}", c) for i, c in enumerate(answer["tool_calls"])]
    return items


def status_of(answer: Answer) -> tuple[str, dict[str, Any] | None]:
    """``completed``, or ``incomplete`` with why (the output limit; a content filter)."""
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
        str(answer["finish_reason"])
    )
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(
    params: ResponsesParams, rid: str, created: float, answer: Answer | None = None
) -> dict[str, Any]:
    """The ``response`` object: ``in_progress`` without an answer, else its final state."""
    status, incomplete = status_of(answer) if answer is not None else ("in_progress", None)
    return {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": int(created),
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "model": answer["model"] if answer is not None and answer["model"] else params.model,
        "output": output_items(answer, rid) if answer is not None else [],
        "usage": response_usage(answer) if answer is not None else None,
        "previous_response_id": None,
        "reasoning": None,
        "truncation": "disabled",
        **params.echo,
        "metadata": params.echo.get("metadata") or {},
    }


def now() -> float:
    return time.time()
