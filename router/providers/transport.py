"""HTTP to the providers: the :class:`Transport` seam, its aiohttp implementation over the
router's shared ``aiohttp.ClientSession``, and the one place where aiohttp's exceptions become
:mod:`kernel.errors` classes.

A transport sends one :class:`HttpRequest` and answers an :class:`HttpResponse` (status, headers,
the body whole or line by line); the adapters do everything else (payload, parsing, error
classification), so a test transport (:class:`router.testing.ScriptedTransport`) runs the real
adapters without a network. A transport that cannot connect or loses the connection raises what
aiohttp raises (``aiohttp.ClientError`` or ``TimeoutError``), translated here by :func:`translate`.

Whether a failed call *reached the provider* decides whether the router may release its
reservation: a refused connection, a DNS failure, a TLS failure or a connect timeout means the
request never left (``reached_provider=False``); a connection dropped after sending, a cut stream
or a read timeout means it may have been processed (``reached_provider=True``). Messages pass
through :func:`kernel.masking.redact` and never contain the secret, which travels in headers only.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from kernel import jsonio
from kernel.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from kernel.masking import mask_secret, redact


@dataclass(frozen=True)
class CallContext:
    """Who is called with which key (masked), for error messages and attributes."""

    provider: str
    secret: str

    @property
    def masked_key(self) -> str:
        return mask_secret(self.secret)

    def clean(self, text: str) -> str:
        """``text`` safe to show: the secret and anything that looks like a key masked."""
        if self.secret and self.secret in text:
            text = text.replace(self.secret, self.masked_key)
        return redact(text)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~3x to build, once per call
class HttpRequest:
    """One provider call: a POST of a JSON ``body`` to ``url``.

    ``timeout`` bounds the whole call, or for a ``stream`` the silence between two chunks;
    ``connect_timeout`` bounds the connection. The headers carry the secret: not in the repr.
    """

    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes
    timeout: float
    connect_timeout: float
    stream: bool = False


class HttpResponse(Protocol):
    """What the adapters read of an answer (``aiohttp.ClientResponse`` is one, as it is)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> AsyncIterable[bytes]:
        """The body line by line (each with its line ending), for streams."""
        ...

    async def read(self) -> bytes: ...

    def release(self) -> Any:
        """Done with a body read to its end (the connection may be reused)."""

    def close(self) -> None:
        """Done with a body not read to its end (the connection is dropped)."""


class Transport(Protocol):
    """Sends provider calls: the seam between the adapters and the network."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """The answer's status and headers (the body is read from the response)."""
        ...


class AiohttpTransport:
    """The default transport: the router's shared ``aiohttp.ClientSession`` (not closed here)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(self, request: HttpRequest) -> HttpResponse:
        timeout = timeouts(request.timeout, request.connect_timeout, stream=request.stream)
        return await self.session.post(
            request.url, data=request.body, headers=request.headers, timeout=timeout
        )


@functools.lru_cache(maxsize=64)  # a few distinct (immutable) values, one per call otherwise
def timeouts(total: float, connect: float, *, stream: bool) -> aiohttp.ClientTimeout:
    """Non-streaming calls get a total timeout; streams a limit on the silence between chunks."""
    if stream:
        return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=total)
    return aiohttp.ClientTimeout(total=total, sock_connect=connect)


def translate(exc: BaseException, ctx: CallContext) -> ProviderError:
    """The router error for an aiohttp (or timeout) failure of a call with ``ctx``."""
    detail = ctx.clean(f"{type(exc).__name__}: {exc}")
    common: dict[str, Any] = {"provider": ctx.provider, "key": ctx.masked_key}
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ProviderConnectionError(
            f"{ctx.provider}: connect timed out ({detail})", reached_provider=False, **common
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderConnectionError(
            f"{ctx.provider}: cannot connect: {_cause(exc)} ({detail})",
            reached_provider=False,
            **common,
        )
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return ProviderTimeoutError(f"{ctx.provider}: no answer in time ({detail})", **common)
    return ProviderConnectionError(
        f"{ctx.provider}: connection lost after the request was sent ({detail})",
        reached_provider=True,
        **common,
    )


def _cause(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection could not be made, in words: "connection refused", "name not resolved"."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "name not resolved"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    code = exc.os_error.errno if exc.os_error is not None else None
    return (os.strerror(code) if code else "connection failed").lower()


async def read_body(response: HttpResponse, ctx: CallContext) -> tuple[bytes, Any]:
    """The raw body and its JSON (None when it is not JSON)."""
    try:
        raw = await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise translate(exc, ctx) from exc
    try:
        return raw, jsonio.loads(raw) if raw else None
    except ValueError:
        return raw, None


async def sse_events(response: HttpResponse, ctx: CallContext) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-event stream; network failures translated."""
    event, data = "", list[str]()
    try:
        async for raw_line in response.content:
            line = raw_line.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "", []
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
        if data:
            yield event, "\n".join(data)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise translate(exc, ctx) from exc
    except (ValueError, LineTooLong) as exc:  # a line past the reader's limit (aiohttp's 512 KiB)
        raise MalformedResponseError(
            ctx.clean(f"{ctx.provider}: a stream line is longer than the reader's limit"),
            provider=ctx.provider,
            key=ctx.masked_key,
            status=response.status,
        ) from exc
