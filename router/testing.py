"""Test helpers that ship with the package: a scripted provider transport (like httpx's
``MockTransport``), so the real adapters and the dispatcher's rotation run without a network.

    transport = ScriptedTransport()
    transport.script(error(429, headers={"retry-after": "3"}), secret="sk-a")   # key a: 429s
    transport.script(refused(), secret="sk-b", model="gpt-4o")                 # key b: down
    router = RequestRouter(manager, transport=transport)
    await router.send_one_shot("hi", "gpt-4o")            # any other call: ok("scripted answer")
    [call.secret for call in transport.calls]              # who was called, in order

A rule answers the calls it matches (by secret, model, provider) with its replies in order, the
last one for every call after; the first rule that matches wins; unmatched calls get
``transport.default``. Replies are rendered in the called provider's own format (OpenAI and
Azure, Anthropic, Gemini; a stream as server-sent events), so the adapters' parsing and error
classification run as in production. Network failures are aiohttp's own exceptions, translated
by the real boundary (router/providers/transport.py).
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

from kernel.masking import mask_secret
from router.providers.transport import HttpRequest, HttpResponse

_SECRET_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


@dataclass(frozen=True)
class Call:
    """One call the transport received (the secret is kept out of the repr)."""

    request: HttpRequest = field(repr=False)
    provider: str
    model: str
    secret: str = field(repr=False)
    key: str = ""  # the secret masked

    @property
    def json(self) -> Any:
        return json.loads(self.request.body)


@dataclass
class Reply:
    """One scripted answer: a status, headers and a body (or stream lines); or ``error`` raised
    instead of answering; ``cut`` raised once the body or lines are read; ``hold`` awaited first
    (a call that never answers until the test says so)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    lines: list[bytes] = field(default_factory=list)
    error: BaseException | None = None
    cut: BaseException | None = None
    hold: asyncio.Event | None = None


#: A reply made for the call (in the called provider's format).
Render = Callable[[Call], Reply]
#: A scripted answer: a fixed Reply, or a function of the call.
Script = Reply | Render


@dataclass
class _Rule:
    replies: list[Script]
    secret: str | None
    model: str | None
    provider: str | None
    used: int = 0

    def matches(self, call: Call) -> bool:
        return (
            (self.secret is None or self.secret == call.secret)
            and (self.model is None or self.model == call.model)
            and (self.provider is None or self.provider == call.provider)
        )

    def next(self) -> Script:
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply


class ScriptedTransport:
    """A :class:`router.providers.Transport` answering scripted replies and recording calls."""

    def __init__(self, default: Script | None = None) -> None:
        self.default: Script = default or ok()
        self.calls: list[Call] = []
        self._rules: list[_Rule] = []

    def script(
        self,
        *replies: Script,
        secret: str | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        """Answer the calls matching every given criterion with ``replies`` in order (the last
        one repeats)."""
        if not replies:
            raise ValueError("script() needs at least one reply")
        self._rules.append(_Rule(list(replies), secret, model, provider))

    async def send(self, request: HttpRequest) -> HttpResponse:
        call = _call_of(request)
        self.calls.append(call)
        rule = next((r for r in self._rules if r.matches(call)), None)
        script = rule.next() if rule is not None else self.default
        reply = script(call) if callable(script) else script
        if reply.hold is not None:
            await reply.hold.wait()
        if reply.error is not None:
            raise reply.error
        return ScriptedResponse(reply)


class ScriptedResponse:
    """An :class:`router.providers.HttpResponse` of one :class:`Reply`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.status = reply.status
        self.headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict(reply.headers))
        self.released = self.closed = False

    @property
    def content(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        for line in self.reply.lines or self.reply.body.splitlines(keepends=True):
            yield line
        if self.reply.cut is not None:
            raise self.reply.cut

    async def read(self) -> bytes:
        if self.reply.cut is not None:
            raise self.reply.cut
        return self.reply.body

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


# -- what a call is --------------------------------------------------------------------------
def _call_of(request: HttpRequest) -> Call:
    url = request.url
    if "generatecontent" in url.lower():  # Gemini: generateContent, streamGenerateContent
        provider, model = "gemini", url.rsplit("/models/", 1)[-1].split(":", 1)[0]
    else:
        provider = (
            "anthropic"
            if url.endswith("/messages")
            else "azure"
            if "api-version=" in url
            else "openai"
        )
        model = str(json.loads(request.body).get("model", ""))
    secret = _secret_of(request.headers)
    return Call(request, provider, model, secret, mask_secret(secret))


def _secret_of(headers: Mapping[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in _SECRET_HEADERS:
        if name in lowered:
            return lowered[name]
    return lowered.get("authorization", "").removeprefix("Bearer ")


# -- answers ---------------------------------------------------------------------------------
def ok(
    text: str = "scripted answer", prompt_tokens: int = 10, completion_tokens: int = 5
) -> Render:
    """A successful answer with ``text`` and this usage, whole or streamed as the call asked."""

    def render(call: Call) -> Reply:
        usage = (prompt_tokens, completion_tokens)
        if call.request.stream:
            events = _STREAMS[_family(call.provider)](call.model, text, *usage)
            return Reply(lines=[line.encode() for line in _sse(events)])
        body = _ANSWERS[_family(call.provider)](call.model, text, *usage)
        return Reply(body=json.dumps(body).encode(), headers={"content-type": "application/json"})

    return render


def error(
    status: int,
    message: str = "scripted failure",
    *,
    kind: str = "",
    headers: Mapping[str, str] | None = None,
) -> Render:
    """A failure answer in the provider's error format; ``kind`` is OpenAI's ``code``,
    Anthropic's error ``type`` or Gemini's ``status`` (e.g. ``context_length_exceeded``)."""

    def render(call: Call) -> Reply:
        family = _family(call.provider)
        if family == "anthropic":
            body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        elif family == "gemini":
            body = {"error": {"code": status, "message": message, "status": kind}}
        else:
            body = {"error": {"message": message, "type": kind, "code": kind or None}}
        return Reply(status, dict(headers or {}), json.dumps(body).encode())

    return render


def rate_limited(retry_after: float | None = None) -> Render:
    """A 429, with a ``Retry-After`` header when given."""
    headers = {} if retry_after is None else {"retry-after": str(retry_after)}
    return error(429, "Rate limit reached", headers=headers)


def refused() -> Reply:
    """The connection is refused (the call never left: its reservation is given back)."""
    key = ConnectionKey("provider.invalid", 443, True, True, None, None, None)
    cause = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    return Reply(error=aiohttp.ClientConnectorError(key, cause))


def connect_timeout() -> Reply:
    """No connection within the connect timeout (the call never left)."""
    return Reply(error=aiohttp.ConnectionTimeoutError("connect timed out"))


def read_timeout() -> Reply:
    """The call was sent and no answer came in time (it may have been processed)."""
    return Reply(error=aiohttp.SocketTimeoutError("read timed out"))


def dropped() -> Reply:
    """The connection was lost after the call was sent."""
    return Reply(error=aiohttp.ServerDisconnectedError())


def held(reply: Reply | None = None) -> tuple[Reply, asyncio.Event]:
    """A reply sent only once the returned event is set (a call in flight, to cancel)."""
    gate = asyncio.Event()
    reply = reply or Reply(body=b"{}")
    reply.hold = gate
    return reply, gate


# -- the providers' formats ------------------------------------------------------------------
def _family(provider: str) -> str:
    return "openai" if provider == "azure" else provider


def _openai(model: str, text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": _openai_usage(prompt, completion),
    }


def _openai_usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _anthropic(model: str, text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "msg_scripted",
        "type": "message",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def _gemini(model: str, text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
        },
        "modelVersion": model,
    }


Events = list[tuple[str, Any]]


def _openai_stream(model: str, text: str, prompt: int, completion: int) -> Events:
    def chunk(choices: list[Any], **more: Any) -> tuple[str, Any]:
        return "", {"model": model, "choices": choices, **more}

    return [
        chunk([{"index": 0, "delta": {"content": text}}]),
        chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk([], usage=_openai_usage(prompt, completion)),
        ("", "[DONE]"),
    ]


def _anthropic_stream(model: str, text: str, prompt: int, completion: int) -> Events:
    start = {"model": model, "usage": {"input_tokens": prompt, "output_tokens": 0}}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": completion},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _gemini_stream(model: str, text: str, prompt: int, completion: int) -> Events:
    return [("", _gemini(model, text, prompt, completion))]


def _sse(events: Events) -> list[str]:
    lines: list[str] = []
    for event, data in events:
        if event:
            lines.append(f"event: {event}\n")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}\n")
        lines.append("\n")
    return lines


_ANSWERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}
_STREAMS = {"openai": _openai_stream, "anthropic": _anthropic_stream, "gemini": _gemini_stream}

__all__ = [
    "Call",
    "Render",
    "Reply",
    "Script",
    "ScriptedResponse",
    "ScriptedTransport",
    "connect_timeout",
    "dropped",
    "error",
    "held",
    "ok",
    "rate_limited",
    "read_timeout",
    "refused",
]
