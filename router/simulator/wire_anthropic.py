"""Anthropic's Messages API as the simulator speaks it.

``x-api-key`` and ``anthropic-version`` headers; errors as ``{"type": "error", "error": {type,
message}, "request_id"}`` (``authentication_error``, ``rate_limit_error``, ``overloaded_error`` with
529, ``invalid_request_error``, ``not_found_error``, ``api_error``);
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`` headers
with RFC 3339 resets, plus ``retry-after`` on a 429. Streams are the named events message_start,
content_block_start, ping, content_block_delta, content_block_stop, message_delta, message_stop.
The simulator keeps one token bucket, so the input- and output-token headers mirror the tokens ones.
A prompt with the content-filter phrase gets what Claude sends for a refusal:
``stop_reason: refusal``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from aiohttp import web

from router.simulator.anthropic_thinking import THINKING_BLOCK, thinking_events, thinking_on
from router.simulator.content import Reply
from router.simulator.limits import LimitView, Rejection
from router.simulator.outcomes import (
    Admitted,
    Call,
    Denied,
    Fault,
    Invalid,
    Limited,
    NotFound,
    Outcome,
)
from router.simulator.wire import (
    Answer,
    StreamPlan,
    Wire,
    WireError,
    as_int,
    completion_override,
    request_id,
    rfc3339,
    sse,
)

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_RATE_DOCS = (
    "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the "
    "response headers for "
    "current usage. Please reduce the prompt length or the maximum tokens requested, or try "
    "again later."
)
_SCOPE_WORDS = {
    "requests": "requests per minute",
    "tokens": "input tokens per minute",
    "input_tokens": "input tokens per minute",
    "output_tokens": "output tokens per minute",
    "requests_per_day": "requests per day",
}


def _error(type_: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": request_id(),
    }


class AnthropicWire(Wire):
    name = "anthropic"

    def secret(self, request: web.Request) -> str | None:
        """``x-api-key``; newer SDKs send the key as ``Authorization: Bearer``, also accepted."""
        key = request.headers.get("x-api-key")
        if key:
            return key
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None

    def parse(self, body: Any, request: web.Request) -> Call:
        if not request.headers.get("anthropic-version"):
            raise WireError("anthropic-version: header is required")
        if not isinstance(body, dict):
            raise WireError("There was an issue with the format or content of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("model: Field required")
        if "max_tokens" not in body:
            raise WireError("max_tokens: Field required")
        max_tokens = as_int(body.get("max_tokens"), "max_tokens")
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise WireError("messages: at least one message is required")
        messages: list[dict[str, Any]] = []
        system = body.get("system")
        if system:
            messages.append({"role": "system", "content": system})
        for index, message in enumerate(raw):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise WireError(f"messages.{index}.role: Input should be 'user' or 'assistant'")
            messages.append(
                {"role": message["role"], "content": _blocks_text(message.get("content"))}
            )
        tools = tuple(
            str(t.get("name", "")) for t in body.get("tools") or [] if isinstance(t, dict)
        )
        return Call(
            provider=self.name,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            tool_names=tools,
            forced_tool=_forced_tool(body.get("tool_choice"), tools),
            completion_tokens=completion_override(request),
            stop_sequences=tuple(str(x) for x in body.get("stop_sequences") or ()),
            thinking=thinking_on(body, raw),
        )

    def answer(self, call: Call, outcome: Outcome) -> Answer:
        if isinstance(outcome, Admitted):
            return Answer(
                200, self._message(call, outcome, final=True), self.limit_headers(outcome.view)
            )
        if isinstance(outcome, Limited):
            return self._limited(outcome.rejection, outcome.view)
        if isinstance(outcome, Denied):
            text = (
                "x-api-key header is required"
                if outcome.reason == "missing"
                else "invalid x-api-key"
            )
            return Answer(401, _error("authentication_error", text))
        if isinstance(outcome, NotFound):
            return Answer(404, _error("not_found_error", f"model: {outcome.model}"))
        if isinstance(outcome, Invalid):
            return Answer(400, _error("invalid_request_error", self._invalid_text(call, outcome)))
        return self._fault(outcome)

    def _message(self, call: Call, admitted: Admitted, *, final: bool) -> dict[str, Any]:
        reply, matched = _stop_at(admitted.reply, call.stop_sequences)
        content: list[dict[str, Any]] = []
        if final and call.thinking:
            content.append(THINKING_BLOCK)
        if final and reply.text:
            content.append({"type": "text", "text": reply.text})
        if final and reply.tool_call is not None:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + reply.tool_call.id,
                    "name": reply.tool_call.name,
                    "input": {},
                }
            )
        return {
            "id": "msg_sim" + admitted.request_id,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": _stop_reason(reply, matched) if final else None,
            "stop_sequence": matched if final else None,
            "usage": {
                "input_tokens": admitted.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": reply.completion_tokens if final else 1,
                "service_tier": "standard",
            },
        }

    @staticmethod
    def _invalid_text(call: Call, invalid: Invalid) -> str:
        if invalid.reason == "max_tokens":
            return (
                f"max_tokens: {invalid.max_tokens} > {invalid.limit}, which is the maximum "
                "allowed number of "
                f"output tokens for {call.model}"
            )
        if invalid.prompt_tokens > invalid.limit:
            return f"prompt is too long: {invalid.prompt_tokens} tokens > {invalid.limit} maximum"
        return (
            f"input length and `max_tokens` exceed context limit: {invalid.prompt_tokens} + "
            f"{invalid.max_tokens} > "
            f"{invalid.limit}, decrease input length or `max_tokens` and try again"
        )

    def _limited(self, rejection: Rejection, view: LimitView | None) -> Answer:
        if rejection.too_large:
            text = (
                "This request would exceed the rate limit for your organization of "
                f"{rejection.limit} "
                f"{_SCOPE_WORDS[rejection.scope]}. {_RATE_DOCS}"
            )
        else:
            text = (
                "This request would exceed the rate limit for your organization of "
                f"{rejection.limit} "
                f"{_SCOPE_WORDS[rejection.scope]}. {_RATE_DOCS}"
            )
        headers = self.limit_headers(view)
        headers["retry-after"] = str(max(1, math.ceil(rejection.retry_after)))
        return Answer(429, _error("rate_limit_error", text), headers)

    def _fault(self, fault: Fault) -> Answer:
        if fault.kind == "spurious_429":
            return self._limited(Rejection("requests", 1.0, 0, 0, 1), fault.view)
        if fault.kind == "overload":
            return Answer(fault.status, _error("overloaded_error", "Overloaded"))
        return Answer(fault.status, _error("api_error", "Internal server error"))

    def invalid_request(self, error: WireError) -> Answer:
        return Answer(400, _error("invalid_request_error", error.message))

    def limit_headers(self, view: LimitView | None) -> dict[str, str]:
        headers = {"request-id": request_id(), "anthropic-organization-id": "org-simulator"}
        if view is None:
            return headers
        now = time.time()
        for family, limit, remaining, reset in _families(view):
            if limit is not None and remaining is not None:
                headers[f"anthropic-ratelimit-{family}-limit"] = str(limit)
                headers[f"anthropic-ratelimit-{family}-remaining"] = str(remaining)
                headers[f"anthropic-ratelimit-{family}-reset"] = rfc3339(now + reset)
        return headers

    def stream(self, call: Call, admitted: Admitted) -> StreamPlan:
        reply, matched = _stop_at(admitted.reply, call.stop_sequences)
        head = [
            sse(
                {"type": "message_start", "message": self._message(call, admitted, final=False)},
                "message_start",
            )
        ]
        if call.thinking:
            head.extend(thinking_events())
        index = 1 if call.thinking else 0
        start, content = _content_block_events(reply, index)
        head.extend(start)
        head.append(sse({"type": "ping"}, "ping"))
        tail = []
        if reply.pieces or reply.tool_call is not None:
            tail.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(reply, matched), "stop_sequence": matched},
            "usage": {"output_tokens": reply.completion_tokens},
        }
        tail.append(sse(message_delta, "message_delta"))
        tail.append(sse({"type": "message_stop"}, "message_stop"))
        return StreamPlan(self.limit_headers(admitted.view), head, content, tail)

    def malformed(self) -> bytes:
        return b'{"id": "msg_broken", "type": "message", "content": [{"type": "te'


def _stop_at(reply: Reply, stops: tuple[str, ...]) -> tuple[Reply, str | None]:
    """The reply cut before the earliest stop sequence its text holds, and that sequence."""
    found = [(reply.text.find(s), s) for s in stops if s and s in reply.text]
    if not found or reply.tool_call is not None:
        return reply, None
    at, matched = min(found)
    text = reply.text[:at]
    return Reply((text,) if text else (), reply.completion_tokens, "stop"), matched


def _stop_reason(reply: Reply, matched: str | None) -> str:
    return "stop_sequence" if matched is not None else _STOP[reply.finish_reason]


def _blocks_text(content: Any) -> Any:
    """Content for token counting: strings as they are; blocks reduced to their text."""
    if not isinstance(content, list):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            parts.append({"text": json.dumps(block.get("input", {}))})
        elif block.get("type") == "tool_result":
            parts.append({"text": _blocks_plain(block.get("content"))})
        else:
            parts.append(block)
    return parts


def _blocks_plain(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def _forced_tool(choice: Any, tools: tuple[str, ...]) -> str | None:
    if not tools or not isinstance(choice, dict):
        return None
    if choice.get("type") == "any":
        return tools[0]
    if choice.get("type") == "tool" and choice.get("name"):
        return str(choice["name"])
    return None


def _content_block_events(reply: Reply, index: int) -> tuple[list[bytes], list[bytes]]:
    """The reply's one content block: its ``content_block_start`` event (none for an empty reply)
    and its ``content_block_delta`` events (the tool call's input, or the text's pieces)."""
    start: list[bytes] = []
    content: list[bytes] = []
    if reply.tool_call is not None:
        block = {
            "type": "tool_use",
            "id": "toolu_" + reply.tool_call.id,
            "name": reply.tool_call.name,
            "input": {},
        }
        start.append(
            sse(
                {"type": "content_block_start", "index": index, "content_block": block},
                "content_block_start",
            )
        )
        delta = {"type": "input_json_delta", "partial_json": reply.tool_call.arguments}
        content.append(
            sse(
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
        )
    elif reply.pieces:
        block_start = {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        }
        start.append(sse(block_start, "content_block_start"))
        for piece in reply.pieces:
            delta = {"type": "text_delta", "text": piece}
            content.append(
                sse(
                    {"type": "content_block_delta", "index": index, "delta": delta},
                    "content_block_delta",
                )
            )
    return start, content


def _families(view: LimitView) -> list[tuple[str, int | None, int | None, float]]:
    """The ``anthropic-ratelimit-*`` families of a key's limits. With separate input and output
    limits (``itpm``/``otpm``) each has its own, and ``tokens`` is the most restrictive of them
    (as Anthropic reports it); a key with one token limit reports it as ``tokens`` only (a
    client must not take it for two limits of that size)."""
    families = [("requests", view.requests_limit, view.requests_remaining, view.requests_reset)]
    tokens = (view.tokens_limit, view.tokens_remaining, view.tokens_reset)
    if view.input_limit is None and view.output_limit is None:
        return [*families, ("tokens", *tokens)]
    io = [
        ("input-tokens", view.input_limit, view.input_remaining, view.input_reset),
        ("output-tokens", view.output_limit, view.output_remaining, view.output_reset),
    ]
    known = [f for f in io if f[1] is not None and f[2] is not None]
    if view.tokens_limit is not None:
        families.append(("tokens", *tokens))
    elif known:
        tightest = min(known, key=lambda f: (f[2] or 0) / (f[1] or 1))
        families.append(("tokens", *tightest[1:]))
    return families + io
