"""Router answers in OpenAI's shapes: a ``chat.completion``, or ``chat.completion.chunk`` events.

The router answers with its own dict (router/answers.py); clients expect OpenAI's objects, so the
translation lives here, in one place, for both the non-streaming body and the SSE stream.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError
from router.answers import Answer

#: OpenAI's finish reasons; the router's ``other`` has no equivalent and reads as ``stop``.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")


def finish_reason(answer: Answer) -> str:
    reason = answer["finish_reason"]
    return reason if reason in FINISH_REASONS else "stop"


def tool_calls(answer: Answer) -> list[dict[str, Any]]:
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for call in answer["tool_calls"]
    ]


def usage(answer: Answer) -> dict[str, Any]:
    tokens = answer["tokens"]
    prompt, completion = tokens["prompt"], tokens["completion"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": tokens["total"] or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": tokens["cached"]},
    }


def completion_body(answer: Answer, request_id: str) -> dict[str, Any]:
    """A ``chat.completion`` object for a successful answer."""
    calls = tool_calls(answer)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer["content"] or (None if calls else ""),
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(answer),
            }
        ],
        "usage": usage(answer),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Writes one answer as OpenAI's server-sent events, ending with ``data: [DONE]``."""

    def __init__(
        self, response: web.StreamResponse, request_id: str, model: str, include_usage: bool
    ) -> None:
        self.response = response
        self.id = f"chatcmpl-{request_id}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return chunk

    async def _send(self, data: dict[str, Any]) -> None:
        await self.response.write(b"data: " + jsonio.dumps(data) + b"\n\n")

    async def delta(self, delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        await self._send(self._chunk([choice]))

    async def start(self) -> None:
        await self.delta({"role": "assistant", "content": "", "refusal": None})

    async def text(self, content: str) -> None:
        await self.delta({"content": content})

    async def finish(self, answer: Answer) -> None:
        """The closing chunk (with tool calls, if any), the usage chunk when asked, [DONE]."""
        self.model = answer["model"] or self.model
        calls = tool_calls(answer)
        closing: dict[str, Any] = {}
        if calls:
            closing["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        await self.delta(closing, finish_reason(answer))
        if self.include_usage:
            await self._send(self._chunk([], usage=usage(answer)))
        await self.response.write(b"data: [DONE]\n\n")

    async def fail(self, error: GatewayError) -> None:
        """A failure after the stream began: an error event (the SDKs raise it), no [DONE]."""
        await self._send(error.body())
