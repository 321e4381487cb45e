"""The body of ``POST /v1/chat/completions``, checked: a bad field is a 400 that names it.

Hand-written rather than a pydantic model: the checks run on every request, and each error must
name the parameter the way OpenAI does (``messages[2].content``, ``tools[0].function.name``).
What passes is safe for every provider adapter; fields the router does not know are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import GatewayError
from kernel.text import control_char_problem
from router.gateway.errors import bad_request
from router.providers.catalog import completion_tokens_problem
from router.providers.openai import PASS_THROUGH

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
    "function": ("text",),
}
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
#: Options handed to the router as they are, once checked: what the OpenAI adapter passes
#: through, except ``n`` (checked to be 1, then dropped) and the two the gateway's schema leaves
#: out (``prediction``, ``modalities``).
PASSED = tuple(name for name in PASS_THROUGH if name not in ("n", "prediction", "modalities"))


@dataclass
class ChatParams:
    """A checked chat request."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _fail(message: str, param: str) -> GatewayError:
    return bad_request(f"Invalid value for '{param}': {message}", param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value) or not low <= value <= high:
        raise _fail(f"expected a number from {low:g} to {high:g}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise _fail(f"expected an integer {bound}", name)
    return int(value)


def _boolean(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _fail("expected a boolean", name)
    return value


def _string(value: Any, param: str, *, empty: bool = True, limit: int | None = None) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _fail("expected a non-empty string" if not empty else "expected a string", param)
    if limit is not None and len(value) > limit:
        raise _fail(f"expected at most {limit} characters", param)
    return value


def _plain(value: str, param: str) -> str:
    problem = control_char_problem(value)
    if problem is not None:
        raise _fail(problem, param)
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail("expected an object", param)
    return value


def _parts(content: list[Any], role: str, param: str) -> None:
    allowed = PART_TYPES[role]
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        part = _object(part, where)
        kind = part.get("type")
        if kind not in allowed:
            raise _fail(
                f"a {role} message takes parts of type {', '.join(allowed)}", where + ".type"
            )
        if kind in ("text", "refusal"):
            _string(part.get(kind), f"{where}.{kind}")
        elif kind == "image_url":
            image = _object(part.get("image_url"), where + ".image_url")
            _string(image.get("url"), where + ".image_url.url", empty=False)
        else:
            _object(part.get(kind), f"{where}.{kind}")


def _content(message: dict[str, Any], role: str, param: str) -> None:
    content = message.get("content")
    if content is None:
        if role in ("assistant", "function"):
            return
        raise _fail("a content is required", param)
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail("expected a string or an array of content parts", param)
    _parts(content, role, param)


def _tool_calls(calls: Any, param: str) -> None:
    if not isinstance(calls, list):
        raise _fail("expected an array", param)
    for i, call in enumerate(calls):
        where = f"{param}[{i}]"
        call = _object(call, where)
        _string(call.get("id"), where + ".id", empty=False)
        function = _object(call.get("function"), where + ".function")
        _string(function.get("name"), where + ".function.name", empty=False)
        _string(function.get("arguments"), where + ".function.arguments")


def _message(value: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    message = _object(value, where)
    role = message.get("role")
    if role not in ROLES:
        raise _fail(f"expected one of {', '.join(ROLES)}", where + ".role")
    _content(message, role, where + ".content")
    if message.get("name") is not None:
        _string(message["name"], where + ".name", empty=False, limit=256)
    if role == "assistant":
        if message.get("tool_calls") is not None:
            _tool_calls(message["tool_calls"], where + ".tool_calls")
        elif message.get("content") is None:
            raise _fail("an assistant message needs a content or tool_calls", where + ".content")
    if role == "tool":
        _string(message.get("tool_call_id"), where + ".tool_call_id", empty=False)
    if role == "function":
        _string(message.get("name"), where + ".name", empty=False)
    return message


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _fail("expected a non-empty array of messages", "messages")
    return [_message(m, i) for i, m in enumerate(value)]


def _tools(value: Any) -> None:
    if not isinstance(value, list):
        raise _fail("expected an array of tools", "tools")
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        tool = _object(tool, where)
        if tool.get("type", "function") != "function":
            raise _fail("only function tools are supported", where + ".type")
        function = _object(tool.get("function"), where + ".function")
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            raise _fail("expected 1-64 letters, digits, '_' or '-'", where + ".function.name")
        if function.get("description") is not None:
            _string(function["description"], where + ".function.description")
        if function.get("parameters") is not None:
            _object(function["parameters"], where + ".function.parameters")


def _tool_choice(value: Any) -> None:
    if value in ("none", "auto", "required"):
        return
    choice = _object(value, "tool_choice")
    if choice.get("type") != "function":
        raise _fail("expected 'none', 'auto', 'required' or a function", "tool_choice.type")
    function = _object(choice.get("function"), "tool_choice.function")
    _string(function.get("name"), "tool_choice.function.name", empty=False)


def _response_format(value: Any) -> None:
    fmt = _object(value, "response_format")
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _fail("expected 'text', 'json_object' or 'json_schema'", "response_format.type")
    if kind == "json_schema":
        schema = _object(fmt.get("json_schema"), "response_format.json_schema")
        _string(schema.get("name"), "response_format.json_schema.name", empty=False, limit=64)
        if schema.get("schema") is not None:
            _object(schema["schema"], "response_format.json_schema.schema")


def _stop(value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > 4:
        raise _fail("expected a string or an array of up to 4 strings", "stop")
    for i, item in enumerate(value):
        _string(item, f"stop[{i}]")


def _logit_bias(value: Any) -> None:
    bias = _object(value, "logit_bias")
    if len(bias) > 300:
        raise _fail("expected at most 300 tokens", "logit_bias")
    for token, weight in bias.items():
        if not token.isdigit() or not _is_number(weight) or not -100 <= weight <= 100:
            raise _fail(
                "expected token ids mapped to numbers from -100 to 100", f"logit_bias.{token}"
            )


def _extras(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("tools") is not None:
        _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"])
    if body.get("response_format") is not None:
        _response_format(body["response_format"])
    if body.get("stop") is not None:
        _stop(body["stop"])
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _integer(body, "seed", -(2**63), 2**63 - 1)
    _integer(body, "top_logprobs", 0, 20)
    for name in ("logprobs", "parallel_tool_calls", "store"):
        _boolean(body, name)
    if body.get("user") is not None:
        _string(body["user"], "user", limit=256)
    if (
        body.get("reasoning_effort") is not None
        and body["reasoning_effort"] not in REASONING_EFFORTS
    ):
        raise _fail(f"expected one of {', '.join(REASONING_EFFORTS)}", "reasoning_effort")
    if body.get("service_tier") is not None:
        _string(body["service_tier"], "service_tier", empty=False, limit=64)
    if body.get("logit_bias") is not None:
        _logit_bias(body["logit_bias"])
    if body.get("metadata") is not None:
        _object(body["metadata"], "metadata")
    return {name: body[name] for name in PASSED if body.get(name) is not None}


def _streaming(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = bool(_boolean(body, "stream"))
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise _fail("only allowed when 'stream' is true", "stream_options")
    options = _object(options, "stream_options")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise _fail("expected a boolean", "stream_options.include_usage")
    return stream, bool(include)


def _completion_limit(body: dict[str, Any], model: str) -> int | None:
    """``max_completion_tokens`` (else ``max_tokens``): at most the model's output limit."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        problem = None if value is None else completion_tokens_problem(value, model)
        if problem is not None:
            raise _fail(problem, name)
    chosen = body.get("max_completion_tokens")
    if chosen is None:
        chosen = body.get("max_tokens")
    return None if chosen is None else int(chosen)


def parse_chat_request(body: Any) -> ChatParams:
    """The checked request, or an GatewayError (400) naming the first bad field."""
    body = _object(body, "body")
    model = _plain(_string(body.get("model"), "model", empty=False, limit=256), "model")
    messages = _messages(body.get("messages"))
    stream, include_usage = _streaming(body)
    n = _integer(body, "n", 1, 128)
    if n is not None and n > 1:
        raise _fail("only n=1 is supported", "n")
    max_tokens = _completion_limit(body, model)
    return ChatParams(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0, 2),
        extras=_extras(body),
    )
