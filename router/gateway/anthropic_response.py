"""Router answers in Anthropic's shapes: a ``message`` object, its stream's named events, and
errors as ``{"type": "error", "error": {"type": ..., "message": ...}}``.

A stream is: ``message_start``, ``ping``, a text block (``content_block_start``, its
``text_delta`` s, ``content_block_stop``) as the text comes, then one block per tool call (its
input as one ``input_json_delta``: the router hands tool calls over whole, at the end), then
``message_delta`` (stop reason, usage) and ``message_stop``. A failure once the stream began is an
``error`` event.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError
from kernel.masking import redact
from router.answers import Answer

#: The router's finish reasons -> Anthropic's stop reasons (anything else reads as end_turn).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
#: HTTP status -> Anthropic's error type (a 5xx not listed is ``api_error``).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def stop_reason(answer: Answer) -> str:
    if answer["tool_calls"]:
        return "tool_use"
    if answer.get("stop_sequence") is not None:
        return "stop_sequence"
    return STOP_REASONS.get(str(answer["finish_reason"]), "end_turn")


def usage(answer: Answer) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` are the uncached ones; cache reads apart."""
    tokens = answer["tokens"]
    return {
        "input_tokens": max(0, tokens["prompt"] - tokens["cached"]),
        "output_tokens": tokens["completion"],
        "cache_read_input_tokens": tokens["cached"],
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic's ``input`` is."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def content_blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = list(answer.get("thinking") or [])
    if answer["content"]:
        blocks.append({"type": "text", "text": answer["content"]})
    for call in answer["tool_calls"]:
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["name"],
                "input": tool_input(call["arguments"]),
            }
        )
    return blocks


def message_body(answer: Answer, request_id: str) -> dict[str, Any]:
    """A ``message`` object for a successful answer."""
    return {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": answer["model"],
        "content": content_blocks(answer),
        "stop_reason": stop_reason(answer),
        "stop_sequence": answer.get("stop_sequence"),
        "usage": usage(answer),
    }


def error_type(error: GatewayError) -> str:
    if error.status == 503 and error.code == "upstream_overloaded":
        return "overloaded_error"
    return ERROR_TYPES.get(
        error.status, "api_error" if error.status >= 500 else "invalid_request_error"
    )


def error_body(error: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error body; the message redacted."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error), "message": redact(error.message)},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_response(error: GatewayError, request_id: str) -> web.Response:
    """An error answer in Anthropic's shape, with ``retry-after`` when the error says when."""
    return web.Response(
        status=error.status,
        body=jsonio.dumps(error_body(error, request_id)),
        content_type="application/json",
        headers={**error.headers(), "request-id": request_id},
    )


class MessageStreamWriter:
    """Writes one answer as Anthropic's server-sent events (``event: <type>`` + ``data:``)."""

    def __init__(
        self, response: web.StreamResponse, request_id: str, model: str, input_tokens: int
    ) -> None:
        self.response = response
        self.id = f"msg_{request_id}"
        self.model = model
        self.input_tokens = input_tokens
        self.index = 0
        self.text_open = False

    async def _send(self, kind: str, data: dict[str, Any]) -> None:
        data = {"type": kind, **data}
        await self.response.write(
            b"event: " + kind.encode() + b"\ndata: " + jsonio.dumps(data) + b"\n\n"
        )

    async def start(self) -> None:
        """``message_start`` (the input tokens as counted here; the provider's at the end)."""
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        await self._send("message_start", {"message": message})
        await self._send("ping", {})

    async def text(self, content: str) -> None:
        if not self.text_open:
            block = {"type": "text", "text": ""}
            await self._send("content_block_start", {"index": self.index, "content_block": block})
            self.text_open = True
        delta = {"type": "text_delta", "text": content}
        await self._send("content_block_delta", {"index": self.index, "delta": delta})

    async def _close_text(self) -> None:
        if self.text_open:
            await self._send("content_block_stop", {"index": self.index})
            self.text_open = False
            self.index += 1

    async def _tool_use(self, call_id: str, name: str, arguments: str) -> None:
        block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        await self._send("content_block_start", {"index": self.index, "content_block": block})
        partial = json.dumps(tool_input(arguments))
        delta = {"type": "input_json_delta", "partial_json": partial}
        await self._send("content_block_delta", {"index": self.index, "delta": delta})
        await self._send("content_block_stop", {"index": self.index})
        self.index += 1

    async def _thinking(self, block: dict[str, Any]) -> None:
        """A whole thinking block: its start, a thinking_delta and a signature_delta, its stop."""
        if block.get("type") != "thinking":
            await self._send("content_block_start", {"index": self.index, "content_block": block})
        else:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            await self._send("content_block_start", {"index": self.index, "content_block": start})
            for kind, name in (("thinking_delta", "thinking"), ("signature_delta", "signature")):
                delta = {"type": kind, name: block.get(name, "")}
                await self._send("content_block_delta", {"index": self.index, "delta": delta})
        await self._send("content_block_stop", {"index": self.index})
        self.index += 1

    async def finish(self, answer: Answer) -> None:
        """The open text block's end, the thinking blocks (the router's streams pass on text
        only: they come whole at the end), the tool-use blocks, ``message_delta``,
        ``message_stop``."""
        await self._close_text()
        for block in answer.get("thinking") or []:
            await self._thinking(block)
        for call in answer["tool_calls"]:
            await self._tool_use(call["id"], call["name"], call["arguments"])
        delta = {"stop_reason": stop_reason(answer), "stop_sequence": answer.get("stop_sequence")}
        await self._send("message_delta", {"delta": delta, "usage": usage(answer)})
        await self._send("message_stop", {})

    async def fail(self, error: GatewayError) -> None:
        """A failure after the stream began: an ``error`` event (the SDKs raise it)."""
        body = error_body(error)
        await self._send("error", {"error": body["error"]})
