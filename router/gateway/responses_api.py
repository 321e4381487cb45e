"""``POST /v1/responses``: OpenAI's Responses API, stateless, over the same path as chat.

The request is translated to a chat call (responses_translate.py), admitted like chat (virtual
key, model, the gateway's limits: ``openai_api._admit``), served by ``RequestRouter.complete`` or
``stream_complete`` (rotation, fallback, usage records and budgets as for chat) and answered as a
``response`` object, or as the Responses API's server-sent events when ``stream`` is true. Nothing
is stored: ``store: true`` is accepted and ignored, ``previous_response_id`` is a 400.
"""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from kernel import jsonio
from kernel.errors import GatewayError
from router.answers import Answer
from router.gateway.errors import from_answer
from router.gateway.openai_api import (
    REQUEST_ID,
    _admit,
    _complete,
    _headers,
    _options,
    _settle,
    _stream,
)
from router.gateway.responses_translate import (
    ResponsesParams,
    call_item,
    message_item,
    now,
    output_text,
    parse_responses_request,
    response_object,
)
from router.gateway.state import GATEWAY


async def create_response(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    caller, checked, estimate = await _admit(request, gateway, parse_responses_request)
    params = cast(ResponsesParams, checked)
    rid = request[REQUEST_ID]
    options = _options(params, caller, request)
    if params.stream:

        def events(response: web.StreamResponse) -> ResponseEventWriter:
            return ResponseEventWriter(response, params, rid)

        return await _stream(request, gateway, caller, params, options, estimate, events)
    created = now()
    answer = await _complete(request, gateway, params, options)
    await _settle(gateway, caller, answer, estimate)
    if not answer["success"]:
        raise from_answer(answer)
    return web.Response(
        body=jsonio.dumps(response_object(params, rid, created, answer)),
        content_type="application/json",
        headers=_headers(answer),
    )


class ResponseEventWriter:
    """Writes one answer as the Responses API's events, each with its ``sequence_number``."""

    def __init__(self, response: web.StreamResponse, params: ResponsesParams, rid: str) -> None:
        self.response = response
        self.params = params
        self.rid = rid
        self.created = now()
        self.sequence = 0
        self.parts: list[str] | None = None  # the message item's text, once it began
        self.item = f"msg_{rid}"

    async def send(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        await self.response.write(
            b"event: " + kind.encode() + b"\ndata: " + jsonio.dumps(data) + b"\n\n"
        )

    async def start(self) -> None:
        state = response_object(self.params, self.rid, self.created)
        await self.send("response.created", response=state)
        await self.send("response.in_progress", response=state)

    async def text(self, content: str) -> None:
        where = {"item_id": self.item, "output_index": 0, "content_index": 0}
        if self.parts is None:
            self.parts = []
            await self.send(
                "response.output_item.added",
                output_index=0,
                item=message_item(self.item, "", "in_progress"),
            )
            await self.send("response.content_part.added", part=output_text(""), **where)
        self.parts.append(content)
        await self.send("response.output_text.delta", delta=content, logprobs=[], **where)

    async def _close_text(self) -> int:
        """Ends the message item if one began: the number of output items so far."""
        if self.parts is None:
            return 0
        text = "".join(self.parts)
        where = {"item_id": self.item, "output_index": 0, "content_index": 0}
        await self.send("response.output_text.done", text=text, logprobs=[], **where)
        await self.send("response.content_part.done", part=output_text(text), **where)
        await self.send(
            "response.output_item.done", output_index=0, item=message_item(self.item, text)
        )
        return 1

    async def finish(self, answer: Answer) -> None:
        """The text's closing events, each tool call's, then ``response.completed``."""
        if self.parts is None and answer["content"]:  # text that came without deltas
            await self.text(answer["content"])
        index = await self._close_text()
        for i, call in enumerate(answer["tool_calls"]):
            item_id = f"fc_{self.rid}_{i}"
            where = {"item_id": item_id, "output_index": index}
            added = call_item(item_id, call, "in_progress")
            await self.send("response.output_item.added", output_index=index, item=added)
            arguments = call["arguments"]
            await self.send("response.function_call_arguments.delta", delta=arguments, **where)
            await self.send("response.function_call_arguments.done", arguments=arguments, **where)
            done = call_item(item_id, call)
            await self.send("response.output_item.done", output_index=index, item=done)
            index += 1
        final = response_object(self.params, self.rid, self.created, answer)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        await self.send(kind, response=final)

    async def fail(self, error: GatewayError) -> None:
        """A failure after the stream began: an ``error`` event (the SDKs raise it)."""
        body = error.body()["error"]
        await self.send(
            "error", code=body["code"], message=body["message"], param=body["param"], error=body
        )
